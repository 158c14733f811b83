//! How the Rate Limit Service consumes and what headers it adds: the
//! `rls_consume` and `rls_headers` settings.

/// How a request with several descriptors consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consume {
    /// Every descriptor takes its cost, or none does (the default).
    #[default]
    AllOrNothing,
    /// Each descriptor under its limit takes its cost, whatever the others
    /// answer (Envoy's envoyproxy/ratelimit).
    Each,
}

/// Which rate-limit headers the response asks Envoy to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Headers {
    /// None (the default).
    #[default]
    Off,
    /// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (the
    /// IETF httpapi draft).
    Draft,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`.
    XRateLimit,
}

impl Consume {
    pub fn name(self) -> &'static str {
        match self {
            Consume::AllOrNothing => "all_or_nothing",
            Consume::Each => "each",
        }
    }

    pub fn parse(text: &str) -> Result<Consume, String> {
        match text.to_ascii_lowercase().as_str() {
            "all_or_nothing" => Ok(Consume::AllOrNothing),
            "each" => Ok(Consume::Each),
            _ => Err(format!(
                "invalid rls_consume '{text}': expected all_or_nothing or each"
            )),
        }
    }
}

impl Headers {
    pub fn name(self) -> &'static str {
        match self {
            Headers::Off => "off",
            Headers::Draft => "draft",
            Headers::XRateLimit => "x-ratelimit",
        }
    }

    pub fn parse(text: &str) -> Result<Headers, String> {
        match text.to_ascii_lowercase().as_str() {
            "off" => Ok(Headers::Off),
            "draft" => Ok(Headers::Draft),
            "x-ratelimit" => Ok(Headers::XRateLimit),
            _ => Err(format!(
                "invalid rls_headers '{text}': expected off, draft or x-ratelimit"
            )),
        }
    }

    /// The three header names, limit, remaining, reset; none when off.
    pub fn names(self) -> Option<[&'static str; 3]> {
        match self {
            Headers::Off => None,
            Headers::Draft => Some(["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]),
            Headers::XRateLimit => Some([
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            ]),
        }
    }
}

/// The service's settings together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    pub consume: Consume,
    pub headers: Headers,
}
