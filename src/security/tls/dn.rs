//! A certificate subject as Java's `X500Principal.getName()` prints it
//! (RFC 2253), which is the name Kafka's principal mapping rules see:
//! the most specific component first, `CN=client,O=gregor`.

use x509_parser::der_parser::asn1_rs::ToDer;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// Why a peer certificate's subject could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the client certificate's subject: {0}")]
pub struct SubjectError(String);

/// The subject of a DER certificate, in RFC 2253 form.
pub fn subject_of(certificate_der: &[u8]) -> Result<String, SubjectError> {
    let (_, certificate) =
        X509Certificate::from_der(certificate_der).map_err(|e| SubjectError(e.to_string()))?;
    Ok(rfc2253(certificate.subject()))
}

/// RFC 2253: components in reverse order of their encoding, separated by
/// `,`; attributes of one component joined by `+`.
pub fn rfc2253(name: &X509Name<'_>) -> String {
    let components: Vec<String> = name
        .iter()
        .map(|rdn| rdn.iter().map(attribute).collect::<Vec<_>>().join("+"))
        .collect();
    components.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// The keywords Java's RFC 2253 output uses; other types print as their
/// dotted OID with the value as `#` and the hex of its DER encoding.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn attribute(attribute: &AttributeTypeAndValue<'_>) -> String {
    let oid = attribute.attr_type().to_id_string();
    match (keyword(&oid), attribute.as_str()) {
        (Some(keyword), Ok(value)) => format!("{keyword}={}", escape(value)),
        (keyword, _) => {
            let der = attribute.attr_value().to_der_vec().unwrap_or_default();
            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
            format!("{}=#{hex}", keyword.map_or(oid.clone(), str::to_string))
        }
    }
}

/// RFC 2253 section 2.4: `,+"\<>;` anywhere, `#` or a space first, and a
/// space last are escaped with a backslash.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn subject(build: impl FnOnce(&mut rcgen::DistinguishedName)) -> String {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        build(&mut params.distinguished_name);
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        subject_of(certificate.der()).unwrap()
    }

    #[test]
    fn most_specific_component_first_as_java_prints_it() {
        let dn = subject(|dn| {
            dn.push(DnType::CountryName, "DE");
            dn.push(DnType::OrganizationName, "gregor");
            dn.push(DnType::OrganizationalUnitName, "ops");
            dn.push(DnType::CommonName, "client");
        });
        assert_eq!(dn, "CN=client,OU=ops,O=gregor,C=DE");
    }

    #[test]
    fn special_characters_are_escaped() {
        let dn = subject(|dn| {
            dn.push(DnType::OrganizationName, "Acme, Inc.");
            dn.push(DnType::CommonName, " a+b ");
        });
        assert_eq!(dn, r"CN=\ a\+b\ ,O=Acme\, Inc.");
    }

    #[test]
    fn types_without_a_keyword_print_as_oid_and_hex() {
        let dn = subject(|dn| {
            dn.push(
                DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
                "a@b",
            );
            dn.push(DnType::CommonName, "x");
        });
        // UTF8String (0x0c), length 3, "a@b".
        assert_eq!(dn, "CN=x,1.2.840.113549.1.9.1=#0c03614062");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(subject_of(b"not a certificate").is_err());
    }
}
