//! UTC calendar dates for figures and notices: `YYYY-MM-DD` of a day number
//! and `YYYY-MM` of a time (proleptic Gregorian, no time zones, no I/O).

/// Seconds per UTC day.
pub const SECS_PER_DAY: u64 = 86_400;

/// `(year, month, day)` of a day number (days since 1970-01-01).
pub fn civil_from_days(days: u64) -> (i64, u32, u32) {
    let z = i64::try_from(days).unwrap_or(i64::MAX / 2) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// `YYYY-MM-DD` of UTC day `day`.
pub fn utc_date(day: u32) -> String {
    let (y, m, d) = civil_from_days(u64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM` of the UTC month holding Unix time `secs`.
pub fn utc_month(secs: u64) -> String {
    let (y, m, _) = civil_from_days(secs / SECS_PER_DAY);
    format!("{y:04}-{m:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(20_422), "2025-11-30");
        assert_eq!(utc_date(11_016), "2000-02-29");
        assert_eq!(utc_date(11_017), "2000-03-01");
        assert_eq!(utc_month(1_763_467_200), "2025-11");
        assert_eq!(utc_month(1_767_225_599), "2025-12");
        assert_eq!(utc_month(1_767_225_600), "2026-01");
    }
}
