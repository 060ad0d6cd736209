//! Correctly signed (or deliberately mis-signed) tokens with generated claims, checked
//! against a model of the claim rules (`dataplane/auth/src/rules.rs`, docs/protocol.md):
//! `sub` a valid user id, `exp` an integer not past (with leeway), `nbf` absent or not in the
//! future (with leeway), `iss` and `aud` as configured — in any JSON spelling (escapes,
//! arrays, duplicates).
#![no_main]

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use pushcluster_auth::{AuthError, ClaimRules, JwtVerifier};
use pushcluster_fuzz::{ISSUER, check_refusal, now};
use serde_json::value::RawValue;

const SECRET: &[u8] = b"jwt-claims-fuzz-secret";
/// What claim values are drawn from: the accepted issuer and audiences, and others.
const POOL: [&str; 4] = [ISSUER, "pushcluster", "pushcluster-staging", "another-app"];

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Alg {
    Hs256,
    Hs384,
    Rs256Header,
}

#[derive(Arbitrary, Debug)]
enum Text {
    Pool(u8),
    Other(String),
}

impl Text {
    fn value(&self) -> String {
        match self {
            Text::Pool(i) => POOL[*i as usize % POOL.len()].to_owned(),
            Text::Other(s) => s.clone(),
        }
    }
}

/// A string claim (`iss`, `aud`) in its possible shapes.
#[derive(Arbitrary, Debug)]
enum Strings {
    Absent,
    One(Text),
    Many(Vec<Text>),
    Number(i32),
    Null,
}

/// A NumericDate claim (`exp`, `nbf`, `iat`): offsets from now, and wrong types.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Time {
    Absent,
    Offset(i16),
    Max,
    Negative,
    Text,
    Fraction(i16),
}

#[derive(Arbitrary, Debug)]
enum Sub {
    Absent,
    Text(String),
    Pool(u8),
    Long,
    Number,
}

/// How strings are spelled in the claims JSON: all equivalent.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Spelling {
    Plain,
    EscapedSlash,
    UnicodeEscapes,
}

#[derive(Arbitrary, Debug)]
struct Input {
    require_issuer: bool,
    /// Bit i: POOL[1 + i] is an accepted audience.
    audiences: u8,
    leeway: u8,
    alg: Alg,
    wrong_key: bool,
    sub: Sub,
    exp: Time,
    nbf: Time,
    iat: Time,
    iss: Strings,
    aud: Strings,
    spelling: Spelling,
    /// Repeat this claim (by index in the claims object).
    duplicate: Option<u8>,
}

fn spell(s: &str, how: Spelling) -> String {
    let json = serde_json::to_string(s).unwrap();
    match how {
        Spelling::Plain => json,
        // `/` is never escaped by serde_json, so every `/` is a plain character: `\/` is valid.
        Spelling::EscapedSlash => json.replace('/', "\\/"),
        // `p` never occurs inside an escape sequence.
        Spelling::UnicodeEscapes => json.replace('p', "\\u0070"),
    }
}

fn time_json(t: Time, now: u64) -> Option<String> {
    Some(match t {
        Time::Absent => return None,
        Time::Offset(o) => (now as i64 + o as i64).to_string(),
        Time::Max => u64::MAX.to_string(),
        Time::Negative => "-5".into(),
        Time::Text => "\"soon\"".into(),
        Time::Fraction(o) => format!("{}.25", now as i64 + o as i64),
    })
}

fn strings_json(s: &Strings, how: Spelling) -> Option<String> {
    Some(match s {
        Strings::Absent => return None,
        Strings::One(t) => spell(&t.value(), how),
        Strings::Many(v) => {
            let items: Vec<String> = v.iter().map(|t| spell(&t.value(), how)).collect();
            format!("[{}]", items.join(","))
        }
        Strings::Number(n) => n.to_string(),
        Strings::Null => "null".into(),
    })
}

/// Values of a string claim, when it has the shape jsonwebtoken reads (a string or an array
/// of strings); `None` when absent or malformed.
fn strings_values(s: &Strings) -> Option<Vec<String>> {
    match s {
        Strings::One(t) => Some(vec![t.value()]),
        Strings::Many(v) => Some(v.iter().map(Text::value).collect()),
        _ => None,
    }
}

/// The model's verdict on one rule: pass, fail, or too close to a clock edge to tell.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    Pass,
    Fail,
    Edge,
}

fn rule(ok: bool) -> Rule {
    if ok { Rule::Pass } else { Rule::Fail }
}

/// `exp` must be a non-negative integer (our claims type reads it as one) with
/// `exp + leeway >= now`.
fn exp_rule(t: Time, leeway: i64) -> Rule {
    match t {
        Time::Offset(o) if (o as i64 + leeway).abs() <= 1 => Rule::Edge,
        Time::Offset(o) => rule(o as i64 + leeway >= 0),
        Time::Max => Rule::Pass,
        _ => Rule::Fail,
    }
}

/// `nbf` is optional; when present a non-negative number with `nbf - leeway <= now`.
fn nbf_rule(t: Time, leeway: i64) -> Rule {
    match t {
        Time::Absent => Rule::Pass,
        Time::Offset(o) | Time::Fraction(o) if (o as i64 - leeway).abs() <= 1 => Rule::Edge,
        Time::Offset(o) | Time::Fraction(o) => rule(o as i64 <= leeway),
        Time::Max | Time::Negative | Time::Text => Rule::Fail,
    }
}

fuzz_target!(|input: Input| {
    let now = now();
    let leeway = u64::from(input.leeway % 61);
    let audiences: Vec<String> = (0..3)
        .filter(|i| input.audiences & (1 << i) != 0)
        .map(|i| POOL[1 + i].to_owned())
        .collect();
    let rules = ClaimRules {
        issuer: input.require_issuer.then(|| ISSUER.to_owned()),
        audiences: audiences.clone(),
        leeway_secs: leeway,
    };
    let verifier = JwtVerifier::hs256(SECRET).with_rules(rules);

    // The claims object, spelled by hand.
    let mut members: Vec<(&str, String)> = Vec::new();
    let sub_value = match &input.sub {
        Sub::Absent => None,
        Sub::Text(s) => Some(s.clone()),
        Sub::Pool(i) => Some(POOL[*i as usize % POOL.len()].to_owned()),
        Sub::Long => Some("u".repeat(300)),
        Sub::Number => None,
    };
    match (&input.sub, &sub_value) {
        (Sub::Number, _) => members.push(("sub", "42".into())),
        (_, Some(s)) => members.push(("sub", spell(s, input.spelling))),
        (_, None) => {}
    }
    for (name, t) in [("exp", input.exp), ("nbf", input.nbf), ("iat", input.iat)] {
        if let Some(v) = time_json(t, now) {
            members.push((name, v));
        }
    }
    for (name, s) in [("iss", &input.iss), ("aud", &input.aud)] {
        if let Some(v) = strings_json(s, input.spelling) {
            members.push((name, v));
        }
    }
    let duplicated = input
        .duplicate
        .filter(|_| !members.is_empty())
        .map(|i| members[i as usize % members.len()].clone());
    if let Some(d) = &duplicated {
        members.push(d.clone());
    }
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    let claims = RawValue::from_string(format!("{{{}}}", body.join(","))).unwrap();

    let alg = match input.alg {
        Alg::Hs384 => Algorithm::HS384,
        Alg::Hs256 | Alg::Rs256Header => Algorithm::HS256,
    };
    let key = if input.wrong_key {
        b"some-other-secret".as_slice()
    } else {
        SECRET
    };
    let mut token =
        jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key)).unwrap();
    if input.alg == Alg::Rs256Header {
        // An RS256 header (`{"alg":"RS256"}`) on an HMAC-signed token: there is no RSA key.
        let rest = token.split_once('.').unwrap().1.to_owned();
        token = format!("eyJhbGciOiJSUzI1NiJ9.{rest}");
    }

    let verdict = verifier.verify_sync(&token);
    if let Err(e) = &verdict {
        check_refusal(&token, e);
    }

    // The model.
    let leeway = leeway as i64;
    let signature = rule(input.alg == Alg::Hs256 && !input.wrong_key);
    let shape = rule(duplicated.is_none());
    let sub = rule(
        matches!(input.sub, Sub::Text(_) | Sub::Pool(_) | Sub::Long)
            && sub_value
                .as_deref()
                .is_some_and(|s| pushcluster_proto::api::validate_user_id(s).is_ok()),
    );
    let iat = rule(matches!(
        input.iat,
        Time::Absent | Time::Offset(_) | Time::Max
    ));
    let exp = exp_rule(input.exp, leeway);
    let nbf = nbf_rule(input.nbf, leeway);
    let iss = rule(
        !input.require_issuer
            || strings_values(&input.iss).is_some_and(|v| v.iter().any(|s| s == ISSUER)),
    );
    let aud = rule(
        audiences.is_empty()
            || strings_values(&input.aud).is_some_and(|v| v.iter().any(|s| audiences.contains(s))),
    );
    let all = [signature, shape, sub, iat, exp, nbf, iss, aud];
    if all.contains(&Rule::Edge) {
        return;
    }
    let expected_ok = all.iter().all(|r| *r == Rule::Pass);
    match &verdict {
        Ok(user) => {
            assert!(
                expected_ok,
                "accepted, but the model refuses: {all:?}, {token}"
            );
            assert_eq!(Some(user), sub_value.as_ref());
        }
        Err(e) => {
            assert!(
                !expected_ok,
                "refused ({e}), but the model accepts: {token}"
            );
            let only =
                |r: Rule| all.iter().filter(|x| **x == Rule::Fail).count() == 1 && r == Rule::Fail;
            if only(exp) && matches!(input.exp, Time::Offset(_)) {
                assert_eq!(e, &AuthError::Expired, "{token}");
            }
            if only(nbf) && !matches!(input.nbf, Time::Max | Time::Negative | Time::Text) {
                assert_eq!(e, &AuthError::NotYetValid, "{token}");
            }
        }
    }
});
