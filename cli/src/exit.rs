//! What the commands share: their exit statuses (a public contract, listed
//! in `--help` and the README) and how durations are written on the
//! command line.

use std::time::Duration;

/// A command failed, or the cluster refused it for good (a membership
/// change that cannot be made, a damaged backup file).
pub(crate) const EXIT_FAILED: i32 = 1;
/// No quorum is reachable (no server answered, or none knew a leader, in
/// time).
pub(crate) const EXIT_UNAVAILABLE: i32 = 69;
/// The session was lost while the command ran (`distlock lock` kills the
/// command's process group first).
pub(crate) const EXIT_SESSION_LOST: i32 = 70;
/// The lock was not acquired (`--try`, or `--wait` ran out).
pub(crate) const EXIT_NOT_ACQUIRED: i32 = 75;
/// `status --check`: the server answered but is not ready (no leader
/// known, or removed from the cluster); EX_TEMPFAIL, as for a lock not
/// acquired.
pub(crate) const EXIT_NOT_READY: i32 = 75;

/// Parses `300us`, `500ms`, `30s`, `2m`, `1h` (a bare number is seconds),
/// to the microsecond.
///
/// # Errors
/// When the text is not such a duration.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((t, "s"), |i| t.split_at(i));
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 30s or 2m"))?;
    let micros_per_unit = match unit {
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use us, ms, s, m or h)"
            ));
        }
    };
    // Whole microseconds, rounded: 0.3ms is 300 µs, not 299.999.
    let micros = (value * micros_per_unit).round();
    if !(0.0..1e15).contains(&micros) {
        return Err(format!("{text:?} is not a duration"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Duration::from_micros(micros as u64))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_in_the_usual_units() {
        assert_eq!(parse_duration("300us"), Ok(Duration::from_micros(300)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
        assert_eq!(parse_duration("0.3ms"), Ok(Duration::from_micros(300)));
        assert!(parse_duration("99999999999h").is_err());
    }
}
