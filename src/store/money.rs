//! Money as integer minor units. Decimal strings are parsed exactly (no floats anywhere), and a
//! commission is `amount × rate` rounded half up to the minor unit.

/// Whether `code` has the form of an ISO 4217 code (three uppercase letters, e.g. "EUR").
pub fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Whether `s` is a plain decimal string: 1 to `whole` digits, then optionally `.` and 1 to
/// `decimals` digits (no sign, no exponent, no spaces), e.g. "19.99".
pub fn is_decimal(s: &str, whole: usize, decimals: usize) -> bool {
    let digits =
        |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('.') {
        Some((w, f)) => digits(w, whole) && digits(f, decimals),
        None => digits(s, whole),
    }
}

/// Minor-unit exponent of an ISO 4217 currency: 0 for the zero-decimal currencies, 3 for the
/// three-decimal ones, 2 for every other well-formed code.
pub fn exponent(currency: &str) -> Option<u32> {
    const ZERO: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
        "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    if !is_currency_code(currency) {
        return None;
    }
    Some(if ZERO.contains(&currency) {
        0
    } else if THREE.contains(&currency) {
        3
    } else {
        2
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{0:?} is not a decimal string such as \"19.99\"")]
    NotDecimal(String),
    #[error("{amount:?} has more decimals than {currency} has ({exponent})")]
    TooPrecise {
        amount: String,
        currency: String,
        exponent: u32,
    },
    #[error("{0:?} is not an ISO 4217 currency code")]
    Currency(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Digits before and after the point of a plain non-negative decimal ("12", "12.5", "0.04").
fn split(s: &str) -> Option<(&str, &str)> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let ok =
        !whole.is_empty() && digits(whole) && digits(frac) && !(s.contains('.') && frac.is_empty());
    ok.then_some((whole, frac))
}

/// `"19.99"` EUR → 1999; `"1500"` JPY → 1500. More decimals than the currency has are refused
/// (a shop reports what was charged, which is whole minor units).
pub fn to_minor(amount: &str, currency: &str) -> Result<i64, MoneyError> {
    let exp = exponent(currency).ok_or_else(|| MoneyError::Currency(currency.into()))?;
    let (whole, frac) = split(amount).ok_or_else(|| MoneyError::NotDecimal(amount.into()))?;
    let frac = frac.trim_end_matches('0');
    if frac.len() > exp as usize {
        return Err(MoneyError::TooPrecise {
            amount: amount.into(),
            currency: currency.into(),
            exponent: exp,
        });
    }
    let too_large = || MoneyError::TooLarge(amount.into());
    if whole.trim_start_matches('0').len() > 12 {
        return Err(too_large());
    }
    let whole: i64 = whole.parse().map_err(|_| too_large())?;
    let frac_minor: i64 = format!("{frac:0<width$}", width = exp as usize)
        .parse()
        .unwrap_or(0);
    whole
        .checked_mul(10i64.pow(exp))
        .and_then(|w| w.checked_add(frac_minor))
        .ok_or_else(too_large)
}

/// 1999 EUR → "19.99"; 1500 JPY → "1500".
pub fn to_decimal(minor: i64, currency: &str) -> String {
    let exp = exponent(currency).unwrap_or(2);
    if exp == 0 {
        return minor.to_string();
    }
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    let unit = 10u64.pow(exp);
    format!(
        "{sign}{}.{:0width$}",
        m / unit,
        m % unit,
        width = exp as usize
    )
}

/// A commission rate: a decimal fraction from 0 to 1 with at most 6 decimals ("0.04").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// The rate × 10⁶.
    millionths: u64,
}

impl Rate {
    pub fn parse(s: &str) -> Option<Rate> {
        let (whole, frac) = split(s)?;
        if frac.len() > 6 || whole.len() > 1 {
            return None;
        }
        let millionths =
            whole.parse::<u64>().ok()? * 1_000_000 + format!("{frac:0<6}").parse::<u64>().ok()?;
        (millionths <= 1_000_000).then_some(Rate { millionths })
    }

    /// `amount_minor × rate`, rounded half up to the minor unit.
    pub fn of(self, amount_minor: i64) -> i64 {
        let product = amount_minor as i128 * self.millionths as i128;
        let rounded = (product + 500_000).div_euclid(1_000_000);
        rounded as i64
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let frac = format!("{:06}", self.millionths % 1_000_000);
        let frac = frac.trim_end_matches('0');
        let whole = self.millionths / 1_000_000;
        if frac.is_empty() {
            write!(f, "{whole}")
        } else {
            write!(f, "{whole}.{frac}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly_into_minor_units_per_currency() {
        assert_eq!(to_minor("19.99", "EUR"), Ok(1999));
        assert_eq!(to_minor("19.9", "USD"), Ok(1990));
        assert_eq!(to_minor("19", "GBP"), Ok(1900));
        assert_eq!(to_minor("0.10", "EUR"), Ok(10));
        assert_eq!(
            to_minor("19.990", "EUR"),
            Ok(1999),
            "trailing zeros are exact"
        );
        assert_eq!(to_minor("1500", "JPY"), Ok(1500));
        assert_eq!(to_minor("1.234", "KWD"), Ok(1234));
        assert!(matches!(
            to_minor("1500.5", "JPY"),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            to_minor("19.999", "EUR"),
            Err(MoneyError::TooPrecise { .. })
        ));
        for bad in ["", ".5", "5.", "-1", "1e3", "1,00", " 1", "0x10", "١٢"] {
            assert!(
                matches!(to_minor(bad, "EUR"), Err(MoneyError::NotDecimal(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(to_minor("1", "eur"), Err(MoneyError::Currency(_))));
        assert!(matches!(
            to_minor("99999999999999999999", "EUR"),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn minor_units_print_back_as_decimals() {
        assert_eq!(to_decimal(1999, "EUR"), "19.99");
        assert_eq!(to_decimal(5, "USD"), "0.05");
        assert_eq!(to_decimal(1500, "JPY"), "1500");
        assert_eq!(to_decimal(1234, "KWD"), "1.234");
    }

    #[test]
    fn commissions_round_half_up_to_the_minor_unit() {
        let four = Rate::parse("0.04").unwrap();
        assert_eq!(four.of(1999), 80, "79.96 cents → 80");
        assert_eq!(four.of(1000), 40);
        let three = Rate::parse("0.03").unwrap();
        assert_eq!(three.of(50), 2, "1.5 → 2 (half up)");
        assert_eq!(three.of(49), 1, "1.47 → 1");
        assert_eq!(three.of(1500), 45, "JPY 1500 × 3 % = 45 yen");
        assert_eq!(Rate::parse("0.025").unwrap().of(100), 3, "2.5 → 3");
        assert_eq!(Rate::parse("1").unwrap().of(123), 123);
        assert_eq!(Rate::parse("0").unwrap().of(123), 0);
        for bad in ["1.5", "-0.1", "0.0000001", "abc", "", "10"] {
            assert_eq!(Rate::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Rate::parse("0.040").unwrap().to_string(), "0.04");
        assert_eq!(Rate::parse("1").unwrap().to_string(), "1");
    }
}
