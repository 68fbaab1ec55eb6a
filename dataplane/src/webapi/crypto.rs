//! Public-key and authenticated-encryption primitives behind `crypto.subtle`, from `ring`:
//! AES-GCM (96-bit IVs, 128-bit tags), Ed25519 and ECDSA P-256 with SHA-256. Knows nothing about
//! V8; `webapi` maps errors to `DOMException`s named as Web Crypto names them.

use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};

/// Why a crypto operation failed: (Web Crypto error name, message).
pub type CryptoError = (&'static str, String);

fn op_error(message: impl Into<String>) -> CryptoError {
    ("OperationError", message.into())
}

/// AES-GCM encryption or decryption. The output of encryption is ciphertext followed by the tag.
pub fn aes_gcm(
    encrypt: bool,
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let algorithm = match key.len() {
        16 => &AES_128_GCM,
        32 => &AES_256_GCM,
        n => {
            return Err((
                "DataError",
                format!("AES-GCM keys are 128 or 256 bits, not {}", n * 8),
            ));
        }
    };
    let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| {
        (
            "NotSupportedError",
            format!(
                "AES-GCM: only 96-bit IVs are supported, not {} bits",
                iv.len() * 8
            ),
        )
    })?;
    let key = LessSafeKey::new(
        UnboundKey::new(algorithm, key).map_err(|_| op_error("AES-GCM: bad key"))?,
    );
    let mut buffer = data.to_vec();
    if encrypt {
        key.seal_in_place_append_tag(nonce, Aad::from(aad), &mut buffer)
            .map_err(|_| op_error("AES-GCM: encryption failed"))?;
        Ok(buffer)
    } else {
        let plain = key
            .open_in_place(nonce, Aad::from(aad), &mut buffer)
            .map_err(|_| op_error("AES-GCM: decryption failed (wrong key, IV, data or tag)"))?;
        Ok(plain.to_vec())
    }
}

/// A new Ed25519 key pair: (PKCS#8 private key, raw 32-byte public key).
pub fn ed25519_generate() -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    let rng = SystemRandom::new();
    let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| op_error("Ed25519: key generation failed"))?;
    let pair = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| op_error("Ed25519: bad key"))?;
    Ok((pkcs8.as_ref().to_vec(), pair.public_key().as_ref().to_vec()))
}

pub fn ed25519_sign(pkcs8: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let pair = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| {
        (
            "DataError",
            "Ed25519: the private key is not valid PKCS#8".to_owned(),
        )
    })?;
    Ok(pair.sign(data).as_ref().to_vec())
}

/// A new ECDSA P-256 key pair: (PKCS#8 private key, uncompressed 65-byte public point).
pub fn p256_generate() -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng)
        .map_err(|_| op_error("ECDSA: key generation failed"))?;
    let pair = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
        .map_err(|_| op_error("ECDSA: bad key"))?;
    Ok((pkcs8.as_ref().to_vec(), pair.public_key().as_ref().to_vec()))
}

/// ECDSA P-256 with SHA-256; the signature is r || s (64 bytes), as Web Crypto has it.
pub fn p256_sign(pkcs8: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let rng = SystemRandom::new();
    let pair = signature::EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8,
        &rng,
    )
    .map_err(|_| {
        (
            "DataError",
            "ECDSA: the private key is not valid PKCS#8 for P-256".to_owned(),
        )
    })?;
    pair.sign(&rng, data)
        .map(|s| s.as_ref().to_vec())
        .map_err(|_| op_error("ECDSA: signing failed"))
}

/// Verifies `signature` over `data` with a raw public key. `algorithm` is `Ed25519` or `P-256`.
pub fn verify(algorithm: &str, public: &[u8], sig: &[u8], data: &[u8]) -> bool {
    let alg: &dyn signature::VerificationAlgorithm = match algorithm {
        "Ed25519" => &signature::ED25519,
        "P-256" => &signature::ECDSA_P256_SHA256_FIXED,
        _ => return false,
    };
    signature::UnparsedPublicKey::new(alg, public)
        .verify(data, sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_gcm_round_trips_and_detects_tampering() {
        let key = [7u8; 32];
        let iv = [1u8; 12];
        let sealed = aes_gcm(true, &key, &iv, b"aad", b"secret").unwrap();
        assert_eq!(sealed.len(), 6 + 16);
        assert_eq!(
            aes_gcm(false, &key, &iv, b"aad", &sealed).unwrap(),
            b"secret"
        );
        let mut tampered = sealed.clone();
        tampered[0] ^= 1;
        assert_eq!(
            aes_gcm(false, &key, &iv, b"aad", &tampered).unwrap_err().0,
            "OperationError"
        );
        assert_eq!(
            aes_gcm(true, &[0; 5], &iv, b"", b"").unwrap_err().0,
            "DataError"
        );
        assert_eq!(
            aes_gcm(true, &key, &[0; 16], b"", b"").unwrap_err().0,
            "NotSupportedError"
        );
    }

    #[test]
    fn signatures_verify_and_reject() {
        let (private, public) = ed25519_generate().unwrap();
        let sig = ed25519_sign(&private, b"hello").unwrap();
        assert!(verify("Ed25519", &public, &sig, b"hello"));
        assert!(!verify("Ed25519", &public, &sig, b"hellO"));
        let (private, public) = p256_generate().unwrap();
        let sig = p256_sign(&private, b"hello").unwrap();
        assert_eq!(sig.len(), 64);
        assert!(verify("P-256", &public, &sig, b"hello"));
        assert!(!verify("P-256", &public, &sig, b"other"));
    }
}
