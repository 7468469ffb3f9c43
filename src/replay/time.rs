//! Log timestamps: the combined format's `10/Oct/2000:13:55:36 -0700`,
//! RFC 3339, and epoch seconds or milliseconds; all to nanoseconds since
//! the Unix epoch (UTC). Hand-written: the replay parses one per line.

use crate::clock::civil_from_days;

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
}

const NANOS: i64 = 1_000_000_000;

/// Seconds since the epoch of a UTC civil time, checked.
fn epoch_secs(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60
    {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s))
}

/// A `+hhmm` / `-hh:mm` offset in seconds east of UTC.
fn offset_secs(b: &[u8]) -> Option<i64> {
    let (sign, rest) = match b.first()? {
        b'+' => (1, &b[1..]),
        b'-' => (-1, &b[1..]),
        _ => return None,
    };
    let (h, m) = match rest.len() {
        4 => (num(&rest[..2])?, num(&rest[2..])?),
        5 if rest[2] == b':' => (num(&rest[..2])?, num(&rest[3..])?),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * i64::from(h * 3600 + m * 60))
}

/// The combined format's `10/Oct/2000:13:55:36 -0700` (the part between
/// the brackets), in nanoseconds since the epoch.
pub(crate) fn parse_clf(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let d = num(&b[0..2])?;
    let mo = match &b[3..6] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    let y = num(&b[7..11])?;
    if b[14] != b':' || b[17] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(&b[12..14])?, num(&b[15..17])?, num(&b[18..20])?);
    let secs = epoch_secs(i64::from(y), mo, d, h, mi, sec)? - offset_secs(&b[21..])?;
    secs.checked_mul(NANOS)
}

/// RFC 3339 (`2026-11-30T08:00:00.250Z`, `...+01:00`; a space for the
/// `T` is accepted), in nanoseconds since the epoch.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let y = num(&b[0..4])?;
    let (mo, d) = (num(&b[5..7])?, num(&b[8..10])?);
    let (h, mi, sec) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    let mut rest = &b[19..];
    let mut frac: i64 = 0;
    if rest.first() == Some(&b'.') {
        let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let mut scale = NANOS;
        for &c in &rest[1..=digits] {
            scale /= 10;
            frac += i64::from(c - b'0') * scale;
        }
        rest = &rest[1 + digits..];
    }
    let off = match rest {
        b"Z" | b"z" => 0,
        _ => offset_secs(rest)?,
    };
    let secs = epoch_secs(i64::from(y), mo, d, h, mi, sec)? - off;
    secs.checked_mul(NANOS)?.checked_add(frac)
}

/// Epoch seconds, or milliseconds when the number is too large to be
/// seconds (after the year 5138), in nanoseconds.
pub(crate) fn from_epoch(n: f64) -> Option<i64> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = if n >= 1e11 { n / 1000.0 } else { n };
    let nanos = secs * 1e9;
    (nanos < i64::MAX as f64).then_some(nanos.round() as i64)
}

/// RFC 3339 in UTC with milliseconds: `2026-11-30T08:00:00.250Z`.
pub(crate) fn format_rfc3339(nanos: i64) -> String {
    crate::clock::rfc3339(nanos, 3)
}

/// The combined format's timestamp of `nanos`, in UTC (`+0000`).
pub(crate) fn format_clf(nanos: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = nanos.div_euclid(NANOS);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{d:02}/{}/{y:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_timestamps() {
        // 2000-10-10T20:55:36Z
        assert_eq!(
            parse_clf("10/Oct/2000:13:55:36 -0700"),
            Some(971_211_336 * NANOS)
        );
        assert_eq!(parse_clf("01/Jan/1970:00:00:00 +0000"), Some(0));
        assert_eq!(
            parse_clf("29/Feb/2024:00:00:00 +0000").map(|n| n / NANOS),
            Some(1_709_164_800)
        );
        for bad in [
            "",
            "10/Oct/2000:13:55:36",
            "10/Foo/2000:13:55:36 -0700",
            "32/Oct/2000:13:55:36 -0700",
            "29/Feb/2023:00:00:00 +0000",
            "10/Oct/2000:25:55:36 -0700",
            "10/Oct/2000:13:55:36 *0700",
            "1a/Oct/2000:13:55:36 -0700",
        ] {
            assert_eq!(parse_clf(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2000-10-10T13:55:36.5-07:00"),
            Some(971_211_336 * NANOS + 500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-10-10 20:55:36.123456789+00:00"),
            Some(971_211_336 * NANOS + 123_456_789)
        );
        for bad in [
            "2000-10-10",
            "2000-13-10T00:00:00Z",
            "2000-10-10T00:00:00",
            "2000-10-10T00:00:00.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn epochs_and_round_trips() {
        assert_eq!(from_epoch(971_211_336.0), Some(971_211_336 * NANOS));
        assert_eq!(
            from_epoch(971_211_336_250.0),
            Some(971_211_336 * NANOS + 250_000_000)
        );
        assert_eq!(from_epoch(-1.0), None);
        assert_eq!(from_epoch(f64::NAN), None);
        let t = 1_764_489_600 * NANOS + 250_000_000; // 2025-11-30T08:00:00.250Z
        assert_eq!(format_rfc3339(t), "2025-11-30T08:00:00.250Z");
        assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t));
        assert_eq!(format_clf(t), "30/Nov/2025:08:00:00 +0000");
        assert_eq!(parse_clf(&format_clf(t)), Some(t - 250_000_000));
        for days in [-1000i64, 0, 59, 60, 365, 11_016, 20_000, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
