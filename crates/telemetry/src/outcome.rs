//! The label values of the request metrics: closed sets, so a series can be an array slot.

macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $label:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),*
        }

        impl $name {
            /// Every value, in index order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// How many values there are.
            pub const COUNT: usize = Self::ALL.len();

            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label),*
                }
            }

            /// The position in [`Self::ALL`].
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

label_enum!(
    /// What the gateway's checks concluded about a request: the `auth` label.
    AuthOutcome {
        /// No API matched the path (404), or the request ended before an API was chosen.
        None => "none",
        /// A keyless API: nothing to check, limits passed.
        Keyless => "keyless",
        /// The token was verified and authorised, limits passed.
        Ok => "ok",
        /// The API wants a token and none was sent (401).
        MissingToken => "missing_token",
        /// The token was refused: malformed, bad signature, unknown key, algorithm, issuer,
        /// audience, not valid yet (401).
        InvalidToken => "invalid_token",
        /// The token (or the session it refreshes) has expired (401).
        Expired => "expired",
        /// A valid token without access: no identity claim, no matching policy, an inactive
        /// policy, access rights, allowed URLs, a deleted OAuth client (403).
        Forbidden => "forbidden",
        /// A rate limit (the API's or the session's) refused the request (429).
        RateLimited => "rate_limited",
        /// The session's quota is used up (429).
        QuotaExceeded => "quota_exceeded",
        /// The IdP's keys could not be obtained (503).
        IdpUnavailable => "idp_unavailable",
        /// The limits could not be checked (503, e.g. Redis down in closed mode).
        LimitsUnavailable => "limits_unavailable",
        /// The API uses an authentication method Gatehouse does not implement (401).
        Unsupported => "unsupported",
        /// The API's authentication or the policies it needs are misconfigured (500).
        Misconfigured => "misconfigured",
    }
);

label_enum!(
    /// The `status_class` label.
    StatusClass {
        /// 1xx.
        Informational => "1xx",
        /// 2xx.
        Success => "2xx",
        /// 3xx.
        Redirection => "3xx",
        /// 4xx.
        ClientError => "4xx",
        /// 5xx (and anything above).
        ServerError => "5xx",
    }
);

impl StatusClass {
    /// The class of a status code.
    pub fn of(status: http::StatusCode) -> StatusClass {
        match status.as_u16() {
            0..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }
}

label_enum!(
    /// Who caused an error answer: the `source` label (the gateway's `ErrorSource`).
    ErrorSource {
        /// The client's request (401/403/404/429).
        Downstream => "downstream",
        /// The upstream (502/504).
        Upstream => "upstream",
        /// A dependency such as the IdP or the limiter backend (503).
        Dependency => "dependency",
        /// Gatehouse itself (500).
        Internal => "internal",
    }
);

label_enum!(
    /// Which limit refused a request: the `limit` label.
    LimitKind {
        /// The API's `global_rate_limit`.
        ApiRate => "api_rate",
        /// The session's rate limit.
        Rate => "rate",
        /// The session's quota.
        Quota => "quota",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_all() {
        for (i, o) in AuthOutcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
        for (i, o) in StatusClass::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
        assert_eq!(AuthOutcome::COUNT, 13);
        assert_eq!(ErrorSource::COUNT, 4);
        assert_eq!(LimitKind::COUNT, 3);
    }

    #[test]
    fn status_classes() {
        use http::StatusCode;
        assert_eq!(StatusClass::of(StatusCode::CONTINUE).as_str(), "1xx");
        assert_eq!(StatusClass::of(StatusCode::OK).as_str(), "2xx");
        assert_eq!(StatusClass::of(StatusCode::NOT_MODIFIED).as_str(), "3xx");
        assert_eq!(StatusClass::of(StatusCode::NOT_FOUND).as_str(), "4xx");
        assert_eq!(StatusClass::of(StatusCode::BAD_GATEWAY).as_str(), "5xx");
        assert_eq!(
            StatusClass::of(StatusCode::from_u16(999).unwrap()).as_str(),
            "5xx"
        );
    }
}
