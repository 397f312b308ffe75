//! UTC dates as the court and authority tools read them: `YYYY-MM-DD`
//! (midnight UTC) or a plain number (a day number, or Unix seconds).

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_date(s: &str) -> Option<u32> {
    let mut it = s.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    u32::try_from(days_from_civil(y, m, d)).ok()
}

/// A UTC day: `YYYY-MM-DD` or a day number.
pub fn parse_day(s: &str) -> Option<u32> {
    if s.contains('-') {
        parse_date(s)
    } else {
        s.parse().ok()
    }
}

/// A time in Unix seconds: `YYYY-MM-DD` (midnight UTC) or Unix seconds.
pub fn parse_time(s: &str) -> Option<u64> {
    if s.contains('-') {
        parse_date(s).map(|d| u64::from(d) * 86_400)
    } else {
        s.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2024-02-29"), Some(19_782));
        assert_eq!(parse_day("2024-03-01"), Some(19_783));
        assert_eq!(parse_day("20422"), Some(20_422));
        assert_eq!(parse_time("2024-03-01"), Some(19_783 * 86_400));
        assert_eq!(parse_time("2024-13-01"), None);
        assert_eq!(parse_day("yesterday"), None);
    }
}
