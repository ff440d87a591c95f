//! `ssl.principal.mapping.rules`: from a client certificate's subject to
//! the principal's name, as Kafka's `SslPrincipalMapper` does it.
//!
//! The value is a list of rules tried in order; the first that applies
//! names the principal. `DEFAULT` keeps the distinguished name as it is;
//! `RULE:pattern/replacement/` applies when `pattern` matches the whole
//! name, and replaces it by `replacement` (`$1` refers to a group), then
//! lower-cases it with a trailing `L` or upper-cases it with `U`. Rules are
//! separated by commas, which may also appear inside a pattern, so the list
//! is split by the rules' own syntax, not at every comma. A name no rule
//! applies to is refused, and so is the connection.

use regex::Regex;

/// One parsed rule.
#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        /// `^(?:pattern)$`: a rule applies only to the whole name.
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// Why `ssl.principal.mapping.rules` could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingRuleError {
    #[error("invalid rule {0:?}: expected DEFAULT or RULE:pattern/replacement/[LU]")]
    Syntax(String),
    #[error("invalid pattern in rule {rule:?}: {reason}")]
    Pattern { rule: String, reason: String },
}

/// The parsed rules; `DEFAULT` alone when the key is unset, as in Kafka.
#[derive(Debug, Clone)]
pub struct PrincipalMappingRules {
    rules: Vec<Rule>,
    /// The text they were parsed from, for comparisons and messages.
    source: String,
}

impl PartialEq for PrincipalMappingRules {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for PrincipalMappingRules {}

impl Default for PrincipalMappingRules {
    fn default() -> Self {
        PrincipalMappingRules {
            rules: vec![Rule::Default],
            source: "DEFAULT".to_string(),
        }
    }
}

impl PrincipalMappingRules {
    pub fn parse(text: &str) -> Result<Self, MappingRuleError> {
        let mut rules = Vec::new();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            let (rule, after) = parse_one(rest)?;
            rules.push(rule);
            rest = after.trim_start();
            match rest.strip_prefix(',') {
                Some(after_comma) => rest = after_comma.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(MappingRuleError::Syntax(rest.to_string())),
            }
        }
        if rules.is_empty() {
            return Ok(Self::default());
        }
        Ok(PrincipalMappingRules {
            rules,
            source: text.trim().to_string(),
        })
    }

    /// The principal name for a subject distinguished name (RFC 2253, as
    /// Java prints it), or `None` when no rule applies.
    pub fn apply(&self, distinguished_name: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(distinguished_name.to_string()),
            Rule::Replace {
                pattern,
                replacement,
                case,
            } => {
                let captures = pattern.captures(distinguished_name)?;
                let mut name = String::new();
                captures.expand(replacement, &mut name);
                Some(match case {
                    Case::Keep => name,
                    Case::Lower => name.to_lowercase(),
                    Case::Upper => name.to_uppercase(),
                })
            }
        })
    }
}

impl std::fmt::Display for PrincipalMappingRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// Parses the rule at the start of `text`; returns it and what follows.
fn parse_one(text: &str) -> Result<(Rule, &str), MappingRuleError> {
    if let Some(after) = text.strip_prefix("DEFAULT") {
        return Ok((Rule::Default, after));
    }
    let Some(body) = text.strip_prefix("RULE:") else {
        return Err(MappingRuleError::Syntax(first_item(text)));
    };
    let (pattern, after_pattern) =
        until_slash(body).ok_or_else(|| MappingRuleError::Syntax(first_item(text)))?;
    let (replacement, after_replacement) =
        until_slash(after_pattern).ok_or_else(|| MappingRuleError::Syntax(first_item(text)))?;
    let (case, after) = match after_replacement.chars().next() {
        Some('L') => (Case::Lower, &after_replacement[1..]),
        Some('U') => (Case::Upper, &after_replacement[1..]),
        _ => (Case::Keep, after_replacement),
    };
    let rule_text = &text[..text.len() - after.len()];
    let pattern =
        Regex::new(&format!("^(?:{pattern})$")).map_err(|e| MappingRuleError::Pattern {
            rule: rule_text.to_string(),
            reason: crate::config::one_line(&e.to_string()),
        })?;
    let rule = Rule::Replace {
        pattern,
        replacement: replacement.to_string(),
        case,
    };
    Ok((rule, after))
}

/// The text up to the first unescaped `/`, and what follows that slash.
/// A backslash escapes the next character (kept, for the regex to see).
fn until_slash(text: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '/' => return Some((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

fn first_item(text: &str) -> String {
    text.split(',').next().unwrap_or(text).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(rules: &str, dn: &str) -> Option<String> {
        PrincipalMappingRules::parse(rules).unwrap().apply(dn)
    }

    #[test]
    fn default_keeps_the_distinguished_name() {
        let rules = PrincipalMappingRules::default();
        assert_eq!(
            rules.apply("CN=client,O=gregor").as_deref(),
            Some("CN=client,O=gregor")
        );
        assert_eq!(
            PrincipalMappingRules::parse("").unwrap().to_string(),
            "DEFAULT"
        );
    }

    #[test]
    fn rules_as_kafka_documents_them() {
        // The examples of Kafka's security documentation.
        let rules = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
                     RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\
                     RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,\
                     DEFAULT";
        let cases = [
            (
                "CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown",
                "serviceuser",
            ),
            (
                "CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown",
                "adminuser@admin",
            ),
            ("CN=Client,O=Org", "client"),
            ("OU=NoCommonName", "OU=NoCommonName"),
        ];
        for (dn, expected) in cases {
            assert_eq!(map(rules, dn).as_deref(), Some(expected), "{dn}");
        }
    }

    #[test]
    fn upper_case_and_escaped_slashes() {
        assert_eq!(
            map("RULE:^CN=(.*)$/$1/U", "CN=alice").as_deref(),
            Some("ALICE")
        );
        assert_eq!(
            map(r"RULE:^CN=(.*)\/(.*)$/$2-$1/", "CN=a/b").as_deref(),
            Some("b-a")
        );
    }

    #[test]
    fn a_name_no_rule_applies_to_is_refused() {
        // A rule must match the whole name, as Java's Matcher.matches().
        assert_eq!(map("RULE:CN=(.*?),O=x/$1/", "CN=a,O=xy"), None);
        assert_eq!(
            map("RULE:CN=(.*?),O=x/$1/", "CN=a,O=x").as_deref(),
            Some("a")
        );
    }

    #[test]
    fn malformed_rules_are_named() {
        let error = PrincipalMappingRules::parse("DEFAULT, RULE:nope").unwrap_err();
        assert_eq!(error, MappingRuleError::Syntax("RULE:nope".to_string()));
        assert!(matches!(
            PrincipalMappingRules::parse("USER:x"),
            Err(MappingRuleError::Syntax(_))
        ));
        assert!(matches!(
            PrincipalMappingRules::parse("RULE:(/x/"),
            Err(MappingRuleError::Pattern { .. })
        ));
        assert!(matches!(
            PrincipalMappingRules::parse("RULE:a/b/x"),
            Err(MappingRuleError::Syntax(_))
        ));
    }
}
