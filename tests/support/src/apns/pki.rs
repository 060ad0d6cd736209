//! Test certificates and keys, generated per run: a CA, a server certificate for
//! `localhost`/`127.0.0.1` signed by it, and an ES256 provider key.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// What a fake APNs server and its clients need.
pub struct Pki {
    /// The CA certificate (PEM): clients add it to their roots.
    pub ca_pem: String,
    /// The server certificate (DER) and its PKCS#8 key (DER).
    pub server_cert_der: Vec<u8>,
    pub server_key_der: Vec<u8>,
    /// The provider token key (PKCS#8 PEM, like Apple's `.p8`).
    pub provider_key_pem: String,
    /// Its public key (SEC1 point), to verify tokens.
    pub provider_public_raw: Vec<u8>,
}

impl Pki {
    pub fn generate() -> anyhow::Result<Pki> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "pushcluster test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "fake APNs");
        let server_cert = params.signed_by(&server_key, &issuer)?;

        let provider = KeyPair::generate()?;
        Ok(Pki {
            ca_pem: ca_cert.pem(),
            server_cert_der: server_cert.der().to_vec(),
            server_key_der: server_key.serialize_der(),
            provider_key_pem: provider.serialize_pem(),
            provider_public_raw: provider.public_key_raw().to_vec(),
        })
    }
}
