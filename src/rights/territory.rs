//! ISO 3166-1 alpha-2 territory codes (the 249 officially assigned codes, as in Debian's
//! `iso-codes` package), plus `WW` for worldwide.

/// Every officially assigned ISO 3166-1 alpha-2 code, sorted.
pub const ISO_3166_1_ALPHA_2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// The worldwide pseudo-code.
pub const WORLDWIDE: &str = "WW";

/// Whether `code` (upper case) is an assigned alpha-2 code.
pub fn is_country(code: &str) -> bool {
    ISO_3166_1_ALPHA_2.binary_search(&code).is_ok()
}

/// Parse a territory list: codes separated by commas, semicolons or spaces, any case; empty
/// means `WW`. Returns the sorted, de-duplicated codes, or why not.
pub fn parse_list(s: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for part in s.split([',', ';', ' ', '|']).map(str::trim).filter(|p| !p.is_empty()) {
        let code = part.to_ascii_uppercase();
        if code == WORLDWIDE || is_country(&code) {
            out.push(code);
        } else {
            let hint = match code.as_str() {
                "UK" => " (the United Kingdom is GB)",
                "EU" => " (list the member states)",
                _ => "",
            };
            return Err(format!(
                "{part:?} is not an ISO 3166-1 alpha-2 territory code{hint}; use codes like JP, \
                 US, or WW for worldwide"
            ));
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        out.push(WORLDWIDE.into());
    }
    if out.len() > 1 && out.iter().any(|c| c == WORLDWIDE) {
        return Err("WW (worldwide) cannot be combined with other codes".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_parses() {
        assert!(ISO_3166_1_ALPHA_2.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(parse_list("jp, us;JP").unwrap(), ["JP", "US"]);
        assert_eq!(parse_list("").unwrap(), ["WW"]);
        assert!(parse_list("UK").unwrap_err().contains("GB"));
        assert!(parse_list("WW,JP").is_err());
        assert!(parse_list("XX").is_err());
    }
}
