//! Calendar arithmetic in UTC: proleptic Gregorian dates from day numbers and back, for
//! PromQL's date functions and for names stamped with a time (admin snapshots); and reading
//! times as the API takes them (RFC 3339 as Go's `time.Parse` reads it, or Unix seconds).
//!
//! The parser is written by hand because its rules are Go's, not a general RFC 3339 reader's:
//! any number of fraction digits, `T`, `t` or a space between date and time, seconds up to 59,
//! days checked against their month. It works on bytes and refuses anything that is not ASCII,
//! so no input can make it slice inside a character.
//!
//! jiff 0.2 was tried on this module's cases and does not read times as Go does. Its
//! `Timestamp` parser (Temporal's ISO 8601) accepts what Go refuses: second 60 (read as 59),
//! offsets `+24:00`, `+01` and `+0100`, no seconds (`20:10Z`), the basic format
//! (`20150701T201051Z`), a comma before the fraction, a `[Europe/Paris]` annotation, six-digit
//! years; and it refuses what Go accepts: more than nine fraction digits. Its `strptime` with
//! `%Y-%m-%dT%H:%M:%S%.f%:z` refuses `Z`, `t` and a space separator and still accepts `+24:00`.
//! Wrapping either in checks of our own would be more code than this reader, not less.

/// Proleptic Gregorian date of a day number (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day number (days since 1970-01-01) of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `t` (Unix ms) as (year, month, day, hour, minute, second, millisecond), UTC.
fn utc_fields(t_ms: i64) -> (i64, i64, i64, i64, i64, i64, i64) {
    let secs = t_ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    (y, m, d, s / 3600, s % 3600 / 60, s % 60, t_ms.rem_euclid(1000))
}

/// `t` (Unix ms) as upstream stamps snapshot names: `YYYYMMDDThhmmssZ`.
pub fn utc_compact(t_ms: i64) -> String {
    let (y, m, d, h, min, s, _) = utc_fields(t_ms);
    format!("{y:04}{m:02}{d:02}T{h:02}{min:02}{s:02}Z")
}

/// `t` (Unix ms) in RFC 3339 with milliseconds, UTC: `2026-11-22T07:12:31.123Z`, as the API's
/// times (a target's `lastScrape`) are written.
pub fn rfc3339(t_ms: i64) -> String {
    let (y, m, d, h, min, s, ms) = utc_fields(t_ms);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{ms:03}Z")
}

/// `t` (Unix ms) as Go prints a UTC `time.Time`: `2026-11-22 07:12:31.123 +0000 UTC`, the
/// fraction without trailing zeros and left out when zero (templates' `humanizeTimestamp`).
pub fn go_utc(t_ms: i64) -> String {
    let (y, m, d, h, min, s, ms) = utc_fields(t_ms);
    let fraction = if ms == 0 { String::new() } else { format!(".{ms:03}").trim_end_matches('0').to_string() };
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02}{fraction} +0000 UTC")
}

/// `ns` nanoseconds as Go prints a `time.Duration`: `1h2m3.5s`, `1m0s`, `1.5ms`, `100ns`, `0s`
/// (scrape pools' `interval` label, templates' `toDuration`).
pub fn go_duration(ns: i64) -> String {
    let u = ns.unsigned_abs();
    // The whole part of u / 10^digits, and its fraction without trailing zeros.
    let split = |digits: u32| {
        let (whole, part) = (u / 10u64.pow(digits), u % 10u64.pow(digits));
        let width = digits as usize;
        let fraction =
            if part == 0 { String::new() } else { format!(".{part:0width$}").trim_end_matches('0').to_string() };
        (whole, fraction)
    };
    let text = match u {
        0 => return "0s".into(),
        1..1_000 => format!("{u}ns"),
        1_000..1_000_000 => format!("{}{}µs", split(3).0, split(3).1),
        1_000_000..1_000_000_000 => format!("{}{}ms", split(6).0, split(6).1),
        _ => {
            let (seconds, fraction) = split(9);
            let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
            match (h, seconds / 60) {
                (0, 0) => format!("{s}{fraction}s"),
                (0, _) => format!("{m}m{s}{fraction}s"),
                _ => format!("{h}h{m}m{s}{fraction}s"),
            }
        }
    };
    if ns < 0 {
        format!("-{text}")
    } else {
        text
    }
}

/// Days in `month` of `year` (proleptic Gregorian).
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The earliest and latest time the API works with, in ms: about 73 million years either side
/// of 1970. Times outside are moved to the nearest end, so that adding or subtracting any two
/// of them, or a range and a lookback, cannot overflow.
pub const MIN_TIME: i64 = -(1 << 61);
pub const MAX_TIME: i64 = 1 << 61;

/// Upstream's API times: Unix seconds as a float, or RFC 3339; to ms since the epoch, clamped
/// to [`MIN_TIME`, `MAX_TIME`]. `None` for anything else (NaN and infinities included).
pub fn parse_timestamp(s: &str) -> Option<i64> {
    parse_timestamp_unclamped(s).map(clamp_time)
}

/// [`parse_timestamp`] before the clamp, in ms as wide as Go's times reach (Unix seconds in an
/// i64), for checks upstream makes on the times as given (a range query's resolution).
pub fn parse_timestamp_unclamped(s: &str) -> Option<i128> {
    // Upstream's boundary times, as client_golang's API client sends them for an open range:
    // RFC 3339 with more than four year digits, which upstream takes only as these two.
    match s {
        "-292273086-05-16T16:47:06Z" => return Some(i128::from(i64::MIN / 1000 + 62_135_596_801) * 1000),
        "292277025-08-18T07:12:54.999999999Z" => {
            return Some(i128::from(i64::MAX / 1000 - 62_135_596_801) * 1000 + 999)
        }
        _ => {}
    }
    if let Some(secs) = crate::strconv::parse_float(s) {
        let ms = (secs * 1000.0).round();
        // The cast saturates.
        return ms.is_finite().then_some(ms as i128);
    }
    parse_rfc3339(s).map(i128::from)
}

/// A time in ms clamped to [`MIN_TIME`, `MAX_TIME`], which keeps time arithmetic in range.
pub fn clamp_time(ms: i128) -> i64 {
    ms.clamp(MIN_TIME.into(), MAX_TIME.into()) as i64
}

/// `2015-07-01T20:10:51.781Z` or with a `±hh:mm` offset, to ms since the epoch, as Go's
/// `time.Parse(time.RFC3339Nano, s)` reads it; fraction digits past milliseconds are dropped.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if !s.is_ascii() || b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    };
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        millis = fraction[..n].iter().chain(b"000").take(3).fold(0, |m, &c| m * 10 + i64::from(c - b'0'));
        rest = &fraction[n..];
    }
    let offset_secs = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| {
                (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i64::from((a - b'0') * 10 + (b - b'0')))
            };
            let (h, m) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'-' {
                -(h * 3600 + m * 60)
            } else {
                h * 3600 + m * 60
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Durations as Go's `time.Duration.String` spells them.
    #[test]
    fn durations_are_spelled_as_go_spells_them() {
        let ms = |ms: i64| go_duration(ms * 1_000_000);
        let spelled: Vec<String> =
            [500, 1000, 1500, 15_000, 60_000, 90_000, 3_600_000, 3_723_500, -61_000].map(ms).into();
        let go = ["500ms", "1s", "1.5s", "15s", "1m0s", "1m30s", "1h0m0s", "1h2m3.5s", "-1m1s"];
        assert_eq!(spelled, go);
        let small: Vec<String> = [0, 100, 1_500, 1_000_001, 999_999_999].map(go_duration).into();
        assert_eq!(small, ["0s", "100ns", "1.5µs", "1.000001ms", "999.999999ms"]);
    }

    #[test]
    fn upstreams_boundary_times_are_the_earliest_and_latest() {
        assert_eq!(parse_timestamp("-292273086-05-16T16:47:06Z"), Some(MIN_TIME));
        assert_eq!(parse_timestamp("292277025-08-18T07:12:54.999999999Z"), Some(MAX_TIME));
        assert_eq!(parse_timestamp("-292273086-05-16T16:47:07Z"), None);
        // Go's MinTime and MaxTime, before the clamp.
        assert_eq!(parse_timestamp_unclamped("-292273086-05-16T16:47:06Z"), Some(-9_223_309_901_257_974_000));
        assert_eq!(parse_timestamp_unclamped("292277025-08-18T07:12:54.999999999Z"), Some(9_223_309_901_257_974_999));
    }

    #[test]
    fn api_times_parse_as_go_reads_them() {
        assert_eq!(parse_timestamp("1435781451.781"), Some(1_435_781_451_781));
        assert_eq!(parse_timestamp("2015-07-01T20:10:51.781Z"), Some(1_435_781_451_781));
        assert_eq!(parse_timestamp("2015-07-01T20:10:51.781999999Z"), Some(1_435_781_451_781));
        assert_eq!(parse_timestamp("2015-07-01T22:10:51.781+02:00"), Some(1_435_781_451_781));
        assert_eq!(parse_timestamp("2015-07-01T18:10:51.781-02:00"), Some(1_435_781_451_781));
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(parse_timestamp("1e300"), Some(MAX_TIME));
        assert_eq!(parse_timestamp_unclamped("1e18"), Some(10i128.pow(21)));
        assert_eq!(parse_timestamp_unclamped("-1.5"), Some(-1500));
        assert_eq!(parse_timestamp("-9e15"), Some(MIN_TIME));
        for refused in [
            "yesterday",
            "2015-13-01T00:00:00Z",
            "2015-02-31T00:00:00Z",
            "2015-02-29T00:00:00Z",
            "2015-04-31T00:00:00Z",
            "2015-07-01T20:10:60Z",
            "2015-07-01T20:10:51.Z",
            "2015-07-01T20:10:51+24:00",
            "2015-07-01T20:10:51+01",
            "nan",
            "inf",
        ] {
            assert_eq!(parse_timestamp(refused), None, "{refused}");
        }
    }

    #[test]
    fn multi_byte_characters_anywhere_are_refused_without_a_panic() {
        let base = "2024-01-01T00:00:00+01:00";
        for at in 0..=base.len() {
            for c in ["é", "€", "😀", "\u{0}"] {
                let mut s = base.to_string();
                s.insert_str(at, c);
                assert_eq!(parse_timestamp(&s), None, "{s}");
                let mut s = base.to_string();
                s.replace_range(at..(at + 1).min(base.len()), c);
                assert_eq!(parse_timestamp(&s), None, "{s}");
            }
        }
        assert_eq!(parse_timestamp("2024-01-01T00:00:00+1é00"), None);
    }

    #[test]
    fn dates_round_trip_and_stamp_like_upstream() {
        for days in [-719_468, -1, 0, 59, 11_016, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(utc_compact(1_616_431_606_000), "20210322T164646Z");
        assert_eq!(go_utc(1_616_431_606_500), "2021-03-22 16:46:46.5 +0000 UTC");
        assert_eq!(go_utc(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(rfc3339(1_435_781_451_781), "2015-07-01T20:10:51.781Z");
    }
}
