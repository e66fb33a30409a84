-- Gatehouse shared rate limits and quotas: one atomic decision per call.
--
-- ARGV[1] is the operation:
--   "r"  rate limit: check and record.      KEYS: log, counters.  ARGV: op, rate, per_us, exact_max, member
--   "rq" rate limit, then quota, together.  KEYS: log, counters, quota.
--                                            ARGV: op, rate, per_us, exact_max, member, max, window_s
--   "q"  quota: consume.                    KEYS: quota.  ARGV: op, max, window_s
--   "qp" quota: peek (read only).           KEYS: quota.  ARGV: op, max, window_s
--   "rx" undo one "r" record (split session check).  KEYS: log, counters.  ARGV: op, member, field
-- Reply: { r_allowed, r_used, r_reset_us, q_allowed, q_used, q_reset_us, r_field }, -1 where a part
-- does not apply. `used` counts this request when it was admitted. `r_field` is the counter a
-- counter-mode "r" recorded into (0 in log mode), for "rx".
--
-- Clock: redis.call('TIME') in microseconds, never earlier than the newest time a key recorded
-- (a server clock stepping back does not shorten anyone's wait).
-- Rate log (exact mode): a sorted set, member unique per request (from the caller), score = time.
-- A request recorded at t counts while t + per > now. Counter mode (rate > exact_max): a hash of
-- sub-window counters, field = end of the sub-window (per / 60 wide), value = requests; they count
-- whole while end + per > now, which never undercounts. Field "t" holds the newest time. Both
-- structures are always counted, so switching mode (a policy edit) never forgets a request.
-- Quota: a string counter created with EX window_s by the first admitted request (the window opens
-- then); INCR only when admitted; the key's TTL is the time left in the window. A quota that never
-- renews comes with a window of 100 years (window_s * 1e6 stays below 2^53, exact in Lua).

local SUB = 60

local function s(x)
  return string.format('%.0f', x)
end

local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Loads and prunes the rate state of (kl, kc) at `now` for a window of `per` microseconds.
local function rate_load(kl, kc, per, now)
  local st = { kl = kl, kc = kc, per = per, log = 0, newest_log = nil, ends = {}, ctotal = 0 }
  if redis.call('EXISTS', kl) == 1 then
    local newest = redis.call('ZRANGE', kl, -1, -1, 'WITHSCORES')
    local t = tonumber(newest[2])
    if t then
      if t > now then now = t end
      st.newest_log = t
    end
  end
  local fields = nil
  if redis.call('EXISTS', kc) == 1 then
    fields = redis.call('HGETALL', kc)
    for i = 1, #fields, 2 do
      if fields[i] == 't' then
        local t = tonumber(fields[i + 1])
        if t and t > now then now = t end
      end
    end
  end
  st.now = now
  if st.newest_log then
    redis.call('ZREMRANGEBYSCORE', kl, '-inf', s(now - per))
    st.log = redis.call('ZCARD', kl)
    if st.log == 0 then st.newest_log = nil end
  end
  if fields then
    for i = 1, #fields, 2 do
      if fields[i] ~= 't' then
        local e = tonumber(fields[i])
        local c = tonumber(fields[i + 1])
        if e == nil or c == nil or c <= 0 or e + per <= now then
          redis.call('HDEL', kc, fields[i])
        else
          st.ends[#st.ends + 1] = { e, c }
          st.ctotal = st.ctotal + c
        end
      end
    end
    if st.ctotal == 0 then
      redis.call('DEL', kc)
    elseif #st.ends > 1 then
      table.sort(st.ends, function(a, b) return a[1] < b[1] end)
    end
  end
  return st
end

-- The time of the n-th oldest request still counted (n >= 1), or nil if fewer are counted.
local function nth_time(st, n)
  if #st.ends == 0 then
    if st.log < n then return nil end
    local r = redis.call('ZRANGE', st.kl, n - 1, n - 1, 'WITHSCORES')
    return tonumber(r[2])
  end
  local logs = {}
  if st.log > 0 then
    local r = redis.call('ZRANGE', st.kl, 0, math.min(n, st.log) - 1, 'WITHSCORES')
    for i = 2, #r, 2 do logs[#logs + 1] = tonumber(r[i]) end
  end
  local i, j, acc = 1, 1, 0
  while i <= #logs or j <= #st.ends do
    local le = logs[i]
    local ce = st.ends[j]
    if ce == nil or (le ~= nil and le <= ce[1]) then
      acc = acc + 1
      i = i + 1
      if acc >= n then return le end
    else
      acc = acc + ce[2]
      j = j + 1
      if acc >= n then return ce[1] end
    end
  end
  return nil
end

-- Microseconds until the n-th oldest counted request leaves the window (0 if none is counted).
local function until_expired(st, n)
  local t = nth_time(st, n)
  if t == nil then return 0 end
  local d = t + st.per - st.now
  if d < 0 then return 0 end
  return d
end

local function rate_count(st)
  return st.log + st.ctotal
end

-- Records one admitted request. Returns the counter field used (0 in log mode).
local function rate_record(st, rate, exact_max, member)
  if st.per <= 0 then return 0 end
  if rate <= exact_max then
    redis.call('ZADD', st.kl, s(st.now), member)
    st.log = st.log + 1
    st.newest_log = st.now
    return 0
  end
  local w = math.max(math.ceil(st.per / SUB), 1)
  local e = (math.floor(st.now / w) + 1) * w
  redis.call('HINCRBY', st.kc, s(e), 1)
  redis.call('HSET', st.kc, 't', s(st.now))
  local found = false
  for k = 1, #st.ends do
    if st.ends[k][1] == e then
      st.ends[k][2] = st.ends[k][2] + 1
      found = true
    end
  end
  if not found then
    st.ends[#st.ends + 1] = { e, 1 }
    table.sort(st.ends, function(a, b) return a[1] < b[1] end)
  end
  st.ctotal = st.ctotal + 1
  return e
end

-- Lets idle keys expire by themselves: each structure lives until its newest request leaves.
local function rate_ttls(st)
  if st.log > 0 and st.newest_log then
    redis.call('PEXPIRE', st.kl, s(math.ceil((st.newest_log + st.per - st.now) / 1000)))
  end
  if st.ctotal > 0 then
    local newest = st.ends[#st.ends][1]
    redis.call('PEXPIRE', st.kc, s(math.ceil((newest + st.per - st.now) / 1000)))
  end
end

-- Decision parts: { allowed, used, reset_us }.
local function rate_refused(st, rate)
  local count = rate_count(st)
  if rate <= 0 then return { 0, count, st.per } end
  local wait = until_expired(st, count - rate + 1)
  return { 0, count, wait }
end

local function rate_peek(st)
  local count = rate_count(st)
  return { 1, count, until_expired(st, 1) }
end

-- Time left in the window, at most one period: a window longer than the period in force (the
-- period was shortened by a policy edit, e.g. a never-renewing quota made renewing) ends one
-- period from now.
local function quota_ttl_us(kq, window)
  local ttl = redis.call('PTTL', kq)
  if ttl < 0 or ttl > window * 1000 then return window * 1000000 end
  return ttl * 1000
end

local function quota_peek(kq, max, window)
  local v = redis.call('GET', kq)
  if not v then
    if max > 0 then return { 1, 0, window * 1000000 } end
    return { 0, 0, window * 1000000 }
  end
  local used = tonumber(v) or 0
  local ttl = quota_ttl_us(kq, window)
  if used < max then return { 1, used, ttl } end
  return { 0, used, ttl }
end

local function quota_consume(kq, max, window)
  local v = redis.call('GET', kq)
  if not v then
    if max <= 0 then return { 0, 0, window * 1000000 } end
    redis.call('SET', kq, '1', 'EX', s(window))
    return { 1, 1, window * 1000000 }
  end
  local used = tonumber(v) or 0
  local pttl = redis.call('PTTL', kq)
  if pttl < 0 or pttl > window * 1000 then
    -- Someone removed the TTL, or the period was shortened: the window ends one period from now
    -- (a never-renewing quota has a window of 100 years, so it keeps a TTL too).
    redis.call('EXPIRE', kq, s(window))
  end
  local ttl = quota_ttl_us(kq, window)
  if used < max then
    redis.call('INCR', kq)
    return { 1, used + 1, ttl }
  end
  return { 0, used, ttl }
end

local op = ARGV[1]
local none = { -1, -1, -1 }

if op == 'r' or op == 'rq' then
  local rate = tonumber(ARGV[2])
  local per = tonumber(ARGV[3])
  local exact_max = tonumber(ARGV[4])
  local member = ARGV[5]
  local st = rate_load(KEYS[1], KEYS[2], per, server_now())
  local r, q, field = nil, none, 0
  local count = rate_count(st)
  if count >= rate then
    r = rate_refused(st, rate)
    if op == 'rq' then q = quota_peek(KEYS[3], tonumber(ARGV[6]), tonumber(ARGV[7])) end
  else
    if op == 'rq' then q = quota_consume(KEYS[3], tonumber(ARGV[6]), tonumber(ARGV[7])) end
    if q[1] == 0 then
      r = rate_peek(st)
    else
      field = rate_record(st, rate, exact_max, member)
      r = { 1, count + 1, until_expired(st, 1) }
    end
  end
  rate_ttls(st)
  return { r[1], r[2], r[3], q[1], q[2], q[3], field }
elseif op == 'q' then
  local q = quota_consume(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
  return { -1, -1, -1, q[1], q[2], q[3], 0 }
elseif op == 'qp' then
  local q = quota_peek(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
  return { -1, -1, -1, q[1], q[2], q[3], 0 }
elseif op == 'rx' then
  local removed = redis.call('ZREM', KEYS[1], ARGV[2])
  if removed == 0 and ARGV[3] ~= '0' then
    if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then
      if redis.call('HINCRBY', KEYS[2], ARGV[3], -1) <= 0 then
        redis.call('HDEL', KEYS[2], ARGV[3])
      end
    end
  end
  return { -1, -1, -1, -1, -1, -1, 0 }
end
return redis.error_reply('gatehouse: unknown operation')
