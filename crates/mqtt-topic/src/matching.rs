//! Whether a topic filter matches a topic name: the rules of MQTT 3.1.1 section 4.7 and 5.0
//! section 4.7, written as plainly as possible. The subscription index answers the same question
//! for many filters at once; this function is the reference it is tested against.

/// Whether `filter` (without any `$share/{ShareName}/` prefix) matches `topic`.
///
/// - `+` matches exactly one level, `#` matches the parent level and any number of levels below
///   (`sport/#` matches `sport` and `sport/tennis/player1`);
/// - a filter starting with `+` or `#` does not match a topic starting with `$`
///   [MQTT-4.7.2-1];
/// - everything else compares level by level, byte for byte [MQTT-4.7.3-4].
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::filter_matches;

    fn check(filter: &str, topic: &str, expected: bool) {
        assert_eq!(
            filter_matches(filter, topic),
            expected,
            "{filter:?} against {topic:?}"
        );
    }

    /// The examples of MQTT 3.1.1 section 4.7.1.2 / 5.0 section 4.7.1.2 (multi-level wildcard).
    #[test]
    fn section_4_7_1_2_multi_level_wildcard_examples() {
        let f = "sport/tennis/player1/#";
        check(f, "sport/tennis/player1", true);
        check(f, "sport/tennis/player1/ranking", true);
        check(f, "sport/tennis/player1/score/wimbledon", true);
        check("sport/#", "sport", true);
        check("#", "sport/tennis", true);
        check("#", "/", true);
        check("sport/tennis/#", "sport/tennis", true);
        check("sport/tennis/#", "sport/tennisx", false);
    }

    /// The examples of section 4.7.1.3 (single-level wildcard).
    #[test]
    fn section_4_7_1_3_single_level_wildcard_examples() {
        check("sport/tennis/+", "sport/tennis/player1", true);
        check("sport/tennis/+", "sport/tennis/player2", true);
        check("sport/tennis/+", "sport/tennis/player1/ranking", false);
        check("sport/+", "sport", false);
        check("sport/+", "sport/", true);
        check("+", "finance", true);
        check("+/+", "/finance", true);
        check("/+", "/finance", true);
        check("+", "/finance", false);
        check("+/tennis/#", "sport/tennis/player1", true);
    }

    /// MQTT-4.7.2-1: wildcard-first filters do not match `$` topics; explicit `$` filters do.
    #[test]
    fn mqtt_4_7_2_1_dollar_topics() {
        check("#", "$SYS/broker/clients", false);
        check("+/monitor/Clients", "$SYS/monitor/Clients", false);
        check("$SYS/#", "$SYS/monitor/Clients", true);
        check("$SYS/monitor/+", "$SYS/monitor/Clients", true);
        check("a/#", "a/$b", true);
        check("a/+", "a/$b", true);
    }

    /// Section 4.7.3 and MQTT-4.7.3-4: empty levels count, case and spaces matter, nothing is
    /// normalised.
    #[test]
    fn mqtt_4_7_3_4_levels_compare_exactly() {
        check("a//b", "a//b", true);
        check("a//b", "a/b", false);
        check("a/+/b", "a//b", true);
        check("/finance", "finance", false);
        check("ACCOUNTS", "Accounts", false);
        check("Accounts payable", "Accounts payable", true);
        check("a/b", "a/b/", false);
    }
}
