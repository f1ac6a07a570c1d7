//! PEM <-> DER helpers and the CA digest used by join tokens.

use base64::Engine as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use sha2::{Digest as _, Sha256};

use super::error::{CaError, CaResult};

/// Parses every `CERTIFICATE` block of a PEM document (other block types are skipped).
/// Fails if there is none.
pub fn certs_from_pem(pem: &str) -> CaResult<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaError::InvalidCertificate(format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(CaError::InvalidCertificate(
            "no CERTIFICATE block in PEM".into(),
        ));
    }
    Ok(certs)
}

/// Parses the first certificate of a PEM document.
pub fn first_cert_from_pem(pem: &str) -> CaResult<CertificateDer<'static>> {
    Ok(certs_from_pem(pem)?.swap_remove(0))
}

/// Encodes DER bytes as a PEM block with the given label (`CERTIFICATE`, ...).
pub fn der_to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Encodes certificates as a PEM bundle.
pub fn certs_to_pem<'a>(certs: impl IntoIterator<Item = &'a CertificateDer<'a>>) -> String {
    certs
        .into_iter()
        .map(|c| der_to_pem("CERTIFICATE", c.as_ref()))
        .collect()
}

/// The digest that join tokens pin: SHA-256 over the DER bytes of every certificate in the CA
/// bundle, concatenated in order. For the usual single root certificate this is simply the SHA-256
/// of its DER encoding. Hashing DER (not the PEM text) makes the digest independent of PEM line
/// wrapping; hashing the *whole* bundle means a served bundle cannot smuggle in extra trust roots.
pub fn ca_bundle_digest(ca_pem: &str) -> CaResult<[u8; 32]> {
    let mut h = Sha256::new();
    for cert in certs_from_pem(ca_pem)? {
        h.update(cert.as_ref());
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let der: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let pem = der_to_pem("CERTIFICATE", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let back = certs_from_pem(&pem).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].as_ref(), &der[..]);
    }

    #[test]
    fn empty_pem_is_an_error() {
        assert!(matches!(
            certs_from_pem("hello"),
            Err(CaError::InvalidCertificate(_))
        ));
    }
}
