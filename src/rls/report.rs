//! How a decision is reported to Envoy: the unit of `current_limit` and
//! the rate-limit headers.

use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus};

use super::options::Options;
use super::tree::UNITS;

/// The headers for the most limited checked descriptor (over its limit,
/// else the least remaining): its capacity, what is left of it, and
/// `duration_until_reset` in whole seconds, rounded up.
pub(super) fn headers(
    options: Options,
    statuses: &[DescriptorStatus],
    capacity: &[Option<u64>],
) -> Vec<HeaderValue> {
    let Some(names) = options.headers.names() else {
        return Vec::new();
    };
    let checked = statuses
        .iter()
        .zip(capacity)
        .filter_map(|(s, c)| Some((s, (*c)?)));
    let Some((s, limit)) =
        checked.min_by_key(|(s, _)| (s.code != Code::OverLimit as i32, s.limit_remaining))
    else {
        return Vec::new();
    };
    let reset = s
        .duration_until_reset
        .map_or(0, |d| d.seconds + i64::from(d.nanos > 0));
    let values = [
        limit.to_string(),
        s.limit_remaining.to_string(),
        reset.to_string(),
    ];
    names
        .into_iter()
        .zip(values)
        .map(|(key, value)| HeaderValue {
            key: key.to_string(),
            value,
            ..Default::default()
        })
        .collect()
}

/// The unit whose length is exactly `window`, else UNKNOWN.
pub(super) fn unit_of(window: u64) -> Unit {
    let units = [
        Unit::Second,
        Unit::Minute,
        Unit::Hour,
        Unit::Day,
        Unit::Week,
        Unit::Month,
        Unit::Year,
    ];
    UNITS
        .iter()
        .zip(units)
        .find(|((_, secs), _)| secs * 1_000_000_000 == window)
        .map_or(Unit::Unknown, |(_, u)| u)
}

/// A unit's name in [`UNITS`]; none for UNKNOWN.
pub(super) fn unit_name(unit: Unit) -> Option<&'static str> {
    Some(match unit {
        Unit::Unknown => return None,
        Unit::Second => "second",
        Unit::Minute => "minute",
        Unit::Hour => "hour",
        Unit::Day => "day",
        Unit::Week => "week",
        Unit::Month => "month",
        Unit::Year => "year",
    })
}

pub(super) fn sat_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
