//! An IdP's answer to a DCR call (RFC 7591/7592, Okta): the success reading
//! (`ClientInformation` → `Registration`) and the error reading (JSON error shapes, HTML pages,
//! credential redaction) for every provider. Must never panic; the credential sent never shows.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&s, body)) = data.split_first() else {
        return;
    };
    // The first byte picks the status class and whether a credential was sent.
    let statuses = [200, 201, 204, 302, 400, 401, 403, 404, 409, 429, 500, 503];
    let status = statuses[usize::from(s) % statuses.len()];
    let sent = (s & 0x80 != 0).then_some("s3cr3t-initial-access-token");
    gatehouse_dcr::fuzzing::read_answer(status, body, sent);
});
