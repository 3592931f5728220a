//! Calendar arithmetic in UTC: proleptic Gregorian dates from day numbers and back, for
//! PromQL's date functions and for names stamped with a time (admin snapshots).

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

#[cfg(test)]
mod tests {
    use super::*;

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
