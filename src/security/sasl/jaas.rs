//! Kafka's `sasl.jaas.config`: one JAAS login module, written
//! `class flag key="value" ...;`, as Kafka's `JaasConfig` reads it.
//!
//! Only the PLAIN module's `user_NAME="password"` options mean anything to
//! gregor (the users PLAIN accepts); other modules parse and are ignored.

use std::collections::BTreeMap;

/// Kafka's `PlainLoginModule`.
pub const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";

/// One parsed login module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasModule {
    pub class: String,
    /// `required`, `requisite`, `sufficient` or `optional`.
    pub flag: String,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JaasError {
    #[error("expected a login module class")]
    NoModule,
    #[error("login module control flag {0:?} is not required, requisite, sufficient or optional")]
    BadFlag(String),
    #[error("option {0:?} has no value")]
    NoValue(String),
    #[error("unterminated quoted value")]
    UnterminatedQuote,
    #[error("the login module does not end with ';'")]
    NoSemicolon,
    #[error("only one login module may be configured, found more after ';'")]
    SeveralModules,
}

impl JaasModule {
    pub fn parse(text: &str) -> Result<Self, JaasError> {
        let mut tokens = Tokens::new(text);
        let class = match tokens.next()? {
            Some(Token::Word(class)) => class,
            _ => return Err(JaasError::NoModule),
        };
        let flag = match tokens.next()? {
            Some(Token::Word(flag))
                if matches!(
                    flag.to_ascii_lowercase().as_str(),
                    "required" | "requisite" | "sufficient" | "optional"
                ) =>
            {
                flag.to_ascii_lowercase()
            }
            Some(Token::Word(flag)) => return Err(JaasError::BadFlag(flag)),
            _ => return Err(JaasError::BadFlag(String::new())),
        };
        let mut options = BTreeMap::new();
        loop {
            match tokens.next()? {
                Some(Token::Semicolon) => break,
                Some(Token::Word(key)) => {
                    if tokens.next()? != Some(Token::Equals) {
                        return Err(JaasError::NoValue(key));
                    }
                    match tokens.next()? {
                        Some(Token::Word(value)) => options.insert(key, value),
                        _ => return Err(JaasError::NoValue(key)),
                    };
                }
                Some(_) | None => return Err(JaasError::NoSemicolon),
            }
        }
        if tokens.next()?.is_some() {
            return Err(JaasError::SeveralModules);
        }
        Ok(JaasModule {
            class,
            flag,
            options,
        })
    }

    /// PLAIN's users: every `user_NAME="password"` option.
    pub fn plain_users(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .filter_map(|(key, value)| {
                Some((key.strip_prefix("user_")?.to_string(), value.clone()))
            })
            .collect()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Equals,
    Semicolon,
}

struct Tokens<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Tokens {
            chars: text.chars().peekable(),
        }
    }

    fn next(&mut self) -> Result<Option<Token>, JaasError> {
        while self.chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(c) = self.chars.next() else {
            return Ok(None);
        };
        Ok(Some(match c {
            '=' => Token::Equals,
            ';' => Token::Semicolon,
            '"' | '\'' => Token::Word(self.quoted(c)?),
            c => {
                let mut word = String::from(c);
                while let Some(c) = self
                    .chars
                    .next_if(|c| !c.is_whitespace() && !matches!(c, '=' | ';' | '"' | '\''))
                {
                    word.push(c);
                }
                Token::Word(word)
            }
        }))
    }

    /// A quoted value; `\` escapes the next character (`\n`, `\t` as in Java).
    fn quoted(&mut self, quote: char) -> Result<String, JaasError> {
        let mut value = String::new();
        loop {
            match self.chars.next().ok_or(JaasError::UnterminatedQuote)? {
                c if c == quote => return Ok(value),
                '\\' => match self.chars.next().ok_or(JaasError::UnterminatedQuote)? {
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafkas_plain_example() {
        let module = JaasModule::parse(
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=\"admin\" password=\"admin-secret\" \
             user_admin=\"admin-secret\" user_alice=\"alice-secret\";",
        )
        .unwrap();
        assert_eq!(module.class, PLAIN_LOGIN_MODULE);
        assert_eq!(module.flag, "required");
        assert_eq!(module.options["username"], "admin");
        let users = module.plain_users();
        assert_eq!(users.len(), 2);
        assert_eq!(users["alice"], "alice-secret");
    }

    #[test]
    fn quoted_values_keep_spaces_semicolons_and_escapes() {
        let module =
            JaasModule::parse(r#"a.B Required user_bob="p a;s\"s\\" user_eve=plain ;"#).unwrap();
        assert_eq!(module.flag, "required");
        assert_eq!(module.plain_users()["bob"], "p a;s\"s\\");
        assert_eq!(module.plain_users()["eve"], "plain");
    }

    #[test]
    fn refuses_what_kafka_refuses() {
        assert_eq!(JaasModule::parse(""), Err(JaasError::NoModule));
        assert_eq!(
            JaasModule::parse("a.B maybe;"),
            Err(JaasError::BadFlag("maybe".into()))
        );
        assert_eq!(
            JaasModule::parse("a.B required x;"),
            Err(JaasError::NoValue("x".into()))
        );
        assert_eq!(
            JaasModule::parse("a.B required x=\"y"),
            Err(JaasError::UnterminatedQuote)
        );
        assert_eq!(
            JaasModule::parse("a.B required x=y"),
            Err(JaasError::NoSemicolon)
        );
        assert_eq!(
            JaasModule::parse("a.B required; c.D required;"),
            Err(JaasError::SeveralModules)
        );
    }
}
