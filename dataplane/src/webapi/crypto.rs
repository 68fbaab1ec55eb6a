//! Public-key and authenticated-encryption primitives behind `crypto.subtle`, from `ring`:
//! AES-GCM (96-bit IVs, 128-bit tags), Ed25519, ECDSA P-256 with SHA-256, and RSA signatures
//! (RSASSA-PKCS1-v1_5 and RSA-PSS, 2048-8192 bits, SHA-256/384/512), PBKDF2 and HKDF, plus the
//! key formats: SubjectPublicKeyInfo, PKCS#8 and the JWK members of private keys (RustCrypto
//! `spki`, `pkcs1`, `pkcs8`, `sec1`). Knows nothing about V8; `webapi` maps errors to
//! `DOMException`s named as Web Crypto names them.

use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};

/// Why a crypto operation failed, by the `DOMException` name Web Crypto gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The operation itself failed (a bad tag, a key that cannot be made).
    #[error("{0}")]
    Operation(String),
    /// The key or data is malformed.
    #[error("{0}")]
    Data(String),
    /// An algorithm, curve or size NANO does not support.
    #[error("{0}")]
    NotSupported(String),
}

impl CryptoError {
    /// The `DOMException` name JS sees.
    pub fn name(&self) -> &'static str {
        match self {
            CryptoError::Operation(_) => "OperationError",
            CryptoError::Data(_) => "DataError",
            CryptoError::NotSupported(_) => "NotSupportedError",
        }
    }
}

fn op_error(message: impl Into<String>) -> CryptoError {
    CryptoError::Operation(message.into())
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
            return Err(CryptoError::Data(format!(
                "AES-GCM keys are 128 or 256 bits, not {}",
                n * 8
            )));
        }
    };
    let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| {
        CryptoError::NotSupported(format!(
            "AES-GCM: only 96-bit IVs are supported, not {} bits",
            iv.len() * 8
        ))
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

/// Runs `$body` with `$aes` the AES block cipher for `$key`'s size (128, 192 or 256 bits), or
/// answers a DataError naming `$what`.
macro_rules! with_aes {
    ($what:expr, $key:expr, $aes:ident => $body:expr) => {
        match $key.len() {
            16 => {
                type $aes = aes::Aes128;
                $body
            }
            24 => {
                type $aes = aes::Aes192;
                $body
            }
            32 => {
                type $aes = aes::Aes256;
                $body
            }
            n => Err(CryptoError::Data(format!(
                "{} keys are 128, 192 or 256 bits, not {}",
                $what,
                n * 8
            ))),
        }
    };
}

/// What a failed decryption says, whatever the cause (as on workerd: which one it was is not
/// told, so a padding oracle learns nothing).
const DECRYPTION_FAILED: &str = "Decryption failed. This could be due to a ciphertext authentication failure, bad padding, incorrect CryptoKey, or another algorithm-specific reason.";

/// AES-CBC with PKCS#7 padding (Web Crypto's), a 16-byte IV.
pub fn aes_cbc(encrypt: bool, key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    use aes::cipher::block_padding::Pkcs7;
    use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
    if iv.len() != 16 {
        return Err(op_error(format!(
            "AES-CBC IV must be 16 bytes long (provided {} bytes).",
            iv.len()
        )));
    }
    with_aes!("AES-CBC", key, Aes => {
        let bad = |_| op_error("AES-CBC: bad key or iv");
        if encrypt {
            Ok(cbc::Encryptor::<Aes>::new_from_slices(key, iv)
                .map_err(bad)?
                .encrypt_padded_vec::<Pkcs7>(data))
        } else {
            cbc::Decryptor::<Aes>::new_from_slices(key, iv)
                .map_err(bad)?
                .decrypt_padded_vec::<Pkcs7>(data)
                .map_err(|_| op_error(DECRYPTION_FAILED))
        }
    })
}

/// AES-CTR (encryption and decryption are the same): `counter` is the first 16-byte counter
/// block, of which the rightmost `length` bits count blocks and wrap to zero; the other bits
/// stay. More blocks than the counter has values would reuse a key stream: refused.
pub fn aes_ctr(
    key: &[u8],
    counter: &[u8],
    length: u32,
    data: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    use aes::cipher::{KeyIvInit, StreamCipher};
    let counter: [u8; 16] = counter.try_into().map_err(|_| {
        op_error(format!(
            "AES-CTR: the counter must be 16 bytes, not {}",
            counter.len()
        ))
    })?;
    if length == 0 || length > 128 {
        return Err(op_error(format!(
            "Invalid counter of {length} bits length provided."
        )));
    }
    let blocks = data.len().div_ceil(16) as u128;
    if length < 128 && blocks > 1u128 << length {
        return Err(op_error("Counter block values will repeat."));
    }
    let mask = u128::MAX >> (128 - length);
    let mut block = u128::from_be_bytes(counter);
    let mut out = data.to_vec();
    with_aes!("AES-CTR", key, Aes => {
        let mut done = 0;
        while done < out.len() {
            // Ctr128BE counts the whole block, which is the same until the counter's bits
            // wrap: then they start again from zero.
            let before_wrap = (mask - (block & mask)).saturating_add(1);
            let bytes = usize::try_from(before_wrap.saturating_mul(16))
                .unwrap_or(usize::MAX)
                .min(out.len() - done);
            ctr::Ctr128BE::<Aes>::new_from_slices(key, &block.to_be_bytes())
                .map_err(|_| op_error("AES-CTR: bad key"))?
                .apply_keystream(&mut out[done..done + bytes]);
            done += bytes;
            block &= !mask;
        }
        Ok(out)
    })
}

/// AES-KW (RFC 3394): wraps data of a multiple of 8 bytes, at least 16; unwrapping checks the
/// integrity value.
pub fn aes_kw(wrap: bool, key: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    use aes_kw::{AesKw, KeyInit};
    with_aes!("AES-KW", key, Aes => {
        let kw = AesKw::<Aes>::new_from_slice(key).map_err(|_| op_error("AES-KW: bad key"))?;
        if wrap {
            if data.len() < 16 || !data.len().is_multiple_of(8) {
                return Err(op_error(format!(
                    "Unwrapped key bit length must be a multiple of 64 bits but unwrapped key has a length of {} bits.",
                    data.len() * 8
                )));
            }
            let mut out = vec![0; data.len() + 8];
            kw.wrap_key(data, &mut out)
                .map_err(|err| op_error(format!("AES-KW: {err}")))?;
            Ok(out)
        } else {
            let mut out = vec![0; data.len().saturating_sub(8)];
            let len = kw
                .unwrap_key(data, &mut out)
                .map_err(|_| op_error("AES-KW key unwrapping failed."))?
                .len();
            out.truncate(len);
            Ok(out)
        }
    })
}

/// ECDH on P-256: the x coordinate of the shared point (32 bytes), from a private key (PKCS#8)
/// and the peer's public key (an uncompressed point).
pub fn ecdh_p256(pkcs8: &[u8], public: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let secret = p256::SecretKey::from_slice(&p256_scalar(pkcs8)?)
        .map_err(|_| data_error("ECDH: the private key is not a P-256 scalar"))?;
    let peer = p256::PublicKey::from_sec1_bytes(public)
        .map_err(|_| data_error("ECDH: the public key is not a point on P-256"))?;
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
    Ok(shared.raw_secret_bytes().to_vec())
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

fn ed25519_pair(pkcs8: &[u8]) -> Result<signature::Ed25519KeyPair, CryptoError> {
    signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
        .map_err(|_| data_error("Ed25519: the private key is not valid PKCS#8"))
}

fn p256_pair(pkcs8: &[u8]) -> Result<signature::EcdsaKeyPair, CryptoError> {
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8, &SystemRandom::new())
        .map_err(|_| data_error("ECDSA: the private key is not valid PKCS#8 for P-256"))
}

pub fn ed25519_sign(pkcs8: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    Ok(ed25519_pair(pkcs8)?.sign(data).as_ref().to_vec())
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
    p256_pair(pkcs8)?
        .sign(&SystemRandom::new(), data)
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

fn data_error(message: impl Into<String>) -> CryptoError {
    CryptoError::Data(message.into())
}

fn rsa_key_pair(pkcs8: &[u8]) -> Result<ring::rsa::KeyPair, CryptoError> {
    ring::rsa::KeyPair::from_pkcs8(pkcs8)
        .map_err(|err| data_error(format!("RSA: the private key is not valid ({err})")))
}

/// Checks an RSA private key (PKCS#8) and answers its public part (n, e).
pub fn rsa_private_public(pkcs8: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    let pair = rsa_key_pair(pkcs8)?;
    let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
    rsa_public_check(&public.n, &public.e)?;
    Ok((public.n, public.e))
}

/// Refuses RSA public keys `ring` cannot use: 2048 to 8192 bits, an odd exponent over 1.
pub fn rsa_public_check(n: &[u8], e: &[u8]) -> Result<(), CryptoError> {
    let bits = |b: &[u8]| {
        let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
        b[start..].first().map_or(0, |&top| {
            (b.len() - start - 1) * 8 + (8 - top.leading_zeros() as usize)
        })
    };
    let modulus = bits(n);
    if !(2048..=8192).contains(&modulus) {
        return Err(data_error(format!(
            "RSA: keys of 2048 to 8192 bits are supported, not {modulus}"
        )));
    }
    if bits(e) < 2 || e.last().is_none_or(|&low| low & 1 == 0) || bits(e) > 33 {
        return Err(data_error(
            "RSA: the public exponent must be odd, 3 or more",
        ));
    }
    Ok(())
}

fn rsa_params(
    scheme: &str,
    hash: &str,
) -> Result<
    (
        &'static ring::signature::RsaParameters,
        &'static dyn ring::signature::RsaEncoding,
    ),
    CryptoError,
> {
    use ring::signature as s;
    Ok(match (scheme, hash) {
        ("PKCS1", "SHA-256") => (&s::RSA_PKCS1_2048_8192_SHA256, &s::RSA_PKCS1_SHA256),
        ("PKCS1", "SHA-384") => (&s::RSA_PKCS1_2048_8192_SHA384, &s::RSA_PKCS1_SHA384),
        ("PKCS1", "SHA-512") => (&s::RSA_PKCS1_2048_8192_SHA512, &s::RSA_PKCS1_SHA512),
        ("PSS", "SHA-256") => (&s::RSA_PSS_2048_8192_SHA256, &s::RSA_PSS_SHA256),
        ("PSS", "SHA-384") => (&s::RSA_PSS_2048_8192_SHA384, &s::RSA_PSS_SHA384),
        ("PSS", "SHA-512") => (&s::RSA_PSS_2048_8192_SHA512, &s::RSA_PSS_SHA512),
        _ => {
            return Err(CryptoError::NotSupported(format!(
                "RSA: {hash} is not supported (SHA-256, SHA-384 and SHA-512 are)"
            )));
        }
    })
}

/// Signs with RSASSA-PKCS1-v1_5 (`scheme` "PKCS1") or RSA-PSS ("PSS", salt as long as the hash).
pub fn rsa_sign(
    scheme: &str,
    hash: &str,
    pkcs8: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let (_, encoding) = rsa_params(scheme, hash)?;
    let pair = rsa_key_pair(pkcs8)?;
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(encoding, &SystemRandom::new(), data, &mut signature)
        .map_err(|_| op_error("RSA: signing failed"))?;
    Ok(signature)
}

/// Verifies an RSA signature with the public key (n, e).
pub fn rsa_verify(
    scheme: &str,
    hash: &str,
    n: &[u8],
    e: &[u8],
    sig: &[u8],
    data: &[u8],
) -> Result<bool, CryptoError> {
    let (params, _) = rsa_params(scheme, hash)?;
    Ok(ring::rsa::PublicKeyComponents { n, e }
        .verify(params, data, sig)
        .is_ok())
}

const RSA_OID: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_OID: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256_OID: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const ED25519_OID: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.101.112");
const X25519_OID: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.101.110");

/// A public key read from a DER SubjectPublicKeyInfo.
#[derive(Debug, PartialEq, Eq)]
pub enum SpkiKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point, 65 bytes.
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
    X25519(Vec<u8>),
}

pub fn spki_decode(der: &[u8]) -> Result<SpkiKey, CryptoError> {
    use spki::der::Decode;
    let bad = |what: &str| data_error(format!("spki: {what}"));
    let info = spki::SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|err| bad(&format!("not a DER SubjectPublicKeyInfo ({err})")))?;
    let key = info
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| bad("the key bits are not whole bytes"))?;
    let (oid, parameter) = info
        .algorithm
        .oids()
        .map_err(|err| bad(&format!("bad algorithm parameters ({err})")))?;
    match (oid, parameter) {
        (RSA_OID, _) => {
            let rsa = pkcs1::RsaPublicKey::from_der(key)
                .map_err(|err| bad(&format!("not a PKCS#1 RSA public key ({err})")))?;
            let (n, e) = (
                rsa.modulus.as_bytes().to_vec(),
                rsa.public_exponent.as_bytes().to_vec(),
            );
            rsa_public_check(&n, &e)?;
            Ok(SpkiKey::Rsa { n, e })
        }
        (EC_OID, Some(P256_OID)) if key.len() == 65 && key[0] == 4 => {
            Ok(SpkiKey::P256(key.to_vec()))
        }
        (EC_OID, Some(P256_OID)) => Err(bad("a P-256 key must be an uncompressed point")),
        (EC_OID, curve) => Err(CryptoError::NotSupported(format!(
            "spki: EC curve {curve:?} is not supported (P-256 is)"
        ))),
        (ED25519_OID, None) if key.len() == 32 => Ok(SpkiKey::Ed25519(key.to_vec())),
        (ED25519_OID, _) => Err(bad("an Ed25519 key is 32 bytes")),
        (X25519_OID, None) if key.len() == 32 => Ok(SpkiKey::X25519(key.to_vec())),
        (X25519_OID, _) => Err(bad("an X25519 key is 32 bytes")),
        (other, _) => Err(CryptoError::NotSupported(format!(
            "spki: algorithm {other} is not supported (RSA, EC P-256, Ed25519, X25519 are)"
        ))),
    }
}

pub fn spki_encode(key: &SpkiKey) -> Result<Vec<u8>, CryptoError> {
    use spki::der::{Encode, asn1::AnyRef, asn1::BitStringRef, asn1::UintRef};
    let failed = |err: spki::der::Error| op_error(format!("spki: cannot encode the key ({err})"));
    let rsa_der;
    let p256_param = AnyRef::from(&P256_OID);
    let (oid, parameters, bits): (_, Option<AnyRef>, &[u8]) = match key {
        SpkiKey::Rsa { n, e } => {
            rsa_der = pkcs1::RsaPublicKey {
                modulus: UintRef::new(n).map_err(failed)?,
                public_exponent: UintRef::new(e).map_err(failed)?,
            }
            .to_der()
            .map_err(failed)?;
            (RSA_OID, Some(AnyRef::NULL), &rsa_der)
        }
        SpkiKey::P256(point) => (EC_OID, Some(p256_param), point),
        SpkiKey::Ed25519(raw) => (ED25519_OID, None, raw),
        SpkiKey::X25519(raw) => (X25519_OID, None, raw),
    };
    spki::SubjectPublicKeyInfoRef {
        algorithm: spki::AlgorithmIdentifierRef { oid, parameters },
        subject_public_key: BitStringRef::from_bytes(bits).map_err(failed)?,
    }
    .to_der()
    .map_err(failed)
}

/// A private key's JWK members (big-endian, as RFC 7518 names them): for RSA n, e, d, p, q, dp,
/// dq, qi; for P-256 d and the uncompressed public point; for Ed25519 the seed d and the public key.
pub type JwkParts = Vec<Vec<u8>>;

fn encode_error(err: spki::der::Error) -> CryptoError {
    op_error(format!("cannot encode the key ({err})"))
}

fn private_key_info(der: &[u8]) -> Result<pkcs8::PrivateKeyInfo<'_>, CryptoError> {
    use spki::der::Decode;
    pkcs8::PrivateKeyInfo::from_der(der)
        .map_err(|err| data_error(format!("pkcs8: not a DER PrivateKeyInfo ({err})")))
}

/// The PKCS#8 DER of a private JWK (`kind` "RSA", "P-256" or "Ed25519"), checked by `ring`:
/// the members must make one valid key.
pub fn pkcs8_from_jwk(kind: &str, parts: &[Vec<u8>]) -> Result<Vec<u8>, CryptoError> {
    use spki::der::Encode;
    use spki::der::asn1::{AnyRef, OctetStringRef, UintRef};
    fn uint(b: &[u8]) -> Result<UintRef<'_>, CryptoError> {
        UintRef::new(b).map_err(encode_error)
    }
    let p256_param = AnyRef::from(&P256_OID);
    let (oid, parameters, inner) = match (kind, parts) {
        ("RSA", [n, e, d, p, q, dp, dq, qi]) => {
            let key = pkcs1::RsaPrivateKey {
                modulus: uint(n)?,
                public_exponent: uint(e)?,
                private_exponent: uint(d)?,
                prime1: uint(p)?,
                prime2: uint(q)?,
                exponent1: uint(dp)?,
                exponent2: uint(dq)?,
                coefficient: uint(qi)?,
                other_prime_infos: None,
            };
            (
                RSA_OID,
                Some(AnyRef::NULL),
                key.to_der().map_err(encode_error)?,
            )
        }
        ("P-256", [d, public]) => {
            let key = sec1::EcPrivateKey {
                private_key: d,
                parameters: None,
                public_key: Some(public),
            };
            (
                EC_OID,
                Some(p256_param),
                key.to_der().map_err(encode_error)?,
            )
        }
        ("Ed25519", [seed, public]) => {
            // RFC 8410 keeps only the seed; check here that the public key belongs to it.
            signature::Ed25519KeyPair::from_seed_and_public_key(seed, public).map_err(|err| {
                data_error(format!("Ed25519: the private key is not valid ({err})"))
            })?;
            let seed = OctetStringRef::new(seed).map_err(encode_error)?;
            (ED25519_OID, None, seed.to_der().map_err(encode_error)?)
        }
        ("X25519", [secret, public]) => {
            if x25519_public(secret)? != public.as_slice() {
                return Err(data_error(
                    "X25519: the public key does not belong to the private key",
                ));
            }
            let secret = OctetStringRef::new(secret).map_err(encode_error)?;
            (X25519_OID, None, secret.to_der().map_err(encode_error)?)
        }
        _ => return Err(data_error(format!("{kind}: incomplete private key"))),
    };
    let der = pkcs8::PrivateKeyInfo {
        algorithm: spki::AlgorithmIdentifierRef { oid, parameters },
        private_key: &inner,
        public_key: None,
    }
    .to_der()
    .map_err(encode_error)?;
    private_key_check(kind, &der)?;
    Ok(der)
}

/// Checks a PKCS#8 private key of `kind` ("RSA", "P-256" or "Ed25519").
pub fn private_key_check(kind: &str, der: &[u8]) -> Result<(), CryptoError> {
    match kind {
        "RSA" => rsa_private_public(der).map(drop),
        "P-256" => p256_pair(der).map(drop),
        "X25519" => x25519_secret(der).map(drop),
        _ => ed25519_pair(der).map(drop),
    }
}

/// A P-256 private key's scalar, from its PKCS#8 (a SEC1 EC private key inside).
fn p256_scalar(der: &[u8]) -> Result<Vec<u8>, CryptoError> {
    use spki::der::Decode;
    let info = private_key_info(der)?;
    let key = sec1::EcPrivateKey::from_der(info.private_key)
        .map_err(|err| data_error(format!("pkcs8: not a SEC1 EC private key ({err})")))?;
    Ok(key.private_key.to_vec())
}

/// An X25519 private key's 32 bytes, from its PKCS#8 (RFC 8410).
fn x25519_secret(der: &[u8]) -> Result<[u8; 32], CryptoError> {
    use spki::der::Decode;
    use spki::der::asn1::OctetStringRef;
    let info = private_key_info(der)?;
    if info.algorithm.oid != X25519_OID {
        return Err(data_error("pkcs8: not an X25519 private key"));
    }
    let secret = OctetStringRef::from_der(info.private_key)
        .map_err(|err| data_error(format!("pkcs8: not an X25519 private key ({err})")))?;
    secret
        .as_bytes()
        .try_into()
        .map_err(|_| data_error("pkcs8: an X25519 private key is 32 bytes"))
}

/// The public key of an X25519 private key.
fn x25519_public(secret: &[u8]) -> Result<[u8; 32], CryptoError> {
    let secret: [u8; 32] = secret
        .try_into()
        .map_err(|_| data_error("X25519: a private key is 32 bytes"))?;
    Ok(x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret)).to_bytes())
}

/// A new X25519 key pair: (PKCS#8 private key, raw 32-byte public key).
pub fn x25519_generate() -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|err| op_error(format!("X25519: no randomness ({err})")))?;
    let public = x25519_public(&secret)?.to_vec();
    let pkcs8 = pkcs8_from_jwk("X25519", &[secret.to_vec(), public.clone()])?;
    Ok((pkcs8, public))
}

/// X25519 agreement: the shared secret of a private key (PKCS#8) and the peer's 32-byte public
/// key. A peer key of small order (the secret would be all zeros) is refused, as on workerd.
pub fn x25519_derive(pkcs8: &[u8], public: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let secret = x25519_dalek::StaticSecret::from(x25519_secret(pkcs8)?);
    let public: [u8; 32] = public
        .try_into()
        .map_err(|_| data_error("X25519: a public key is 32 bytes"))?;
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(public));
    if !shared.was_contributory() {
        return Err(op_error(
            "X25519: the peer's public key is of small order (the shared secret would be zero)",
        ));
    }
    Ok(shared.as_bytes().to_vec())
}

/// The JWK members of a PKCS#8 private key (see [`JwkParts`]).
pub fn jwk_from_pkcs8(kind: &str, der: &[u8]) -> Result<JwkParts, CryptoError> {
    use spki::der::Decode;
    use spki::der::asn1::OctetStringRef;
    let info = private_key_info(der)?;
    let bad = |what: &str| data_error(format!("pkcs8: {what}"));
    match kind {
        "RSA" => {
            let key = pkcs1::RsaPrivateKey::from_der(info.private_key)
                .map_err(|err| bad(&format!("not a PKCS#1 RSA private key ({err})")))?;
            Ok([
                key.modulus,
                key.public_exponent,
                key.private_exponent,
                key.prime1,
                key.prime2,
                key.exponent1,
                key.exponent2,
                key.coefficient,
            ]
            .iter()
            .map(|part| part.as_bytes().to_vec())
            .collect())
        }
        "P-256" => {
            let public = p256_pair(der)?.public_key().as_ref().to_vec();
            Ok(vec![p256_scalar(der)?, public])
        }
        "X25519" => {
            let secret = x25519_secret(der)?;
            Ok(vec![secret.to_vec(), x25519_public(&secret)?.to_vec()])
        }
        _ => {
            let seed = OctetStringRef::from_der(info.private_key)
                .map_err(|err| bad(&format!("not an Ed25519 private key ({err})")))?;
            let public = ed25519_pair(der)?.public_key().as_ref().to_vec();
            Ok(vec![seed.as_bytes().to_vec(), public])
        }
    }
}

/// Most PBKDF2 iterations one call may ask for (as workerd), and most HMAC computations in all
/// (iterations times output blocks): the derivation runs in native code, which the CPU limit
/// cannot interrupt.
pub const MAX_PBKDF2_ITERATIONS: u32 = 100_000;
pub const MAX_PBKDF2_WORK: u64 = 400_000;

/// ring's HKDF and PBKDF2 algorithms for a Web Crypto hash name.
fn kdf_algorithms(
    hash: &str,
) -> Result<(ring::hkdf::Algorithm, ring::pbkdf2::Algorithm), CryptoError> {
    use ring::{hkdf, pbkdf2};
    Ok(match hash {
        "SHA-1" => (
            hkdf::HKDF_SHA1_FOR_LEGACY_USE_ONLY,
            pbkdf2::PBKDF2_HMAC_SHA1,
        ),
        "SHA-256" => (hkdf::HKDF_SHA256, pbkdf2::PBKDF2_HMAC_SHA256),
        "SHA-384" => (hkdf::HKDF_SHA384, pbkdf2::PBKDF2_HMAC_SHA384),
        "SHA-512" => (hkdf::HKDF_SHA512, pbkdf2::PBKDF2_HMAC_SHA512),
        other => {
            return Err(CryptoError::NotSupported(format!(
                "{other} is not supported (SHA-1, SHA-256, SHA-384, SHA-512 are)"
            )));
        }
    })
}

/// PBKDF2 with HMAC-`hash`: `bytes` bytes from `password` and `salt`.
pub fn pbkdf2(
    hash: &str,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    bytes: usize,
) -> Result<Vec<u8>, CryptoError> {
    let (hmac, algorithm) = kdf_algorithms(hash)?;
    let block = ring::hkdf::KeyType::len(&hmac);
    let work = u64::from(iterations) * bytes.div_ceil(block) as u64;
    if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS || work > MAX_PBKDF2_WORK {
        return Err(CryptoError::NotSupported(format!(
            "PBKDF2: {iterations} iterations for {} bits; 1 to {MAX_PBKDF2_ITERATIONS} \
                 iterations and at most {MAX_PBKDF2_WORK} iterations x output blocks are \
                 supported (the derivation cannot be interrupted)",
            bytes * 8
        )));
    }
    let iterations = std::num::NonZeroU32::new(iterations).expect("checked above");
    let mut out = vec![0; bytes];
    ring::pbkdf2::derive(algorithm, iterations, salt, password, &mut out);
    Ok(out)
}

/// HKDF with `hash` (RFC 5869): `bytes` bytes from `key`, `salt` and `info`.
pub fn hkdf(
    hash: &str,
    key: &[u8],
    salt: &[u8],
    info: &[u8],
    bytes: usize,
) -> Result<Vec<u8>, CryptoError> {
    struct Len(usize);
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let (algorithm, _) = kdf_algorithms(hash)?;
    let most = 255 * ring::hkdf::KeyType::len(&algorithm);
    if bytes > most {
        return Err(op_error(format!(
            "HKDF: at most {} bits can be derived with {hash}, not {}",
            most * 8,
            bytes * 8
        )));
    }
    let prk = ring::hkdf::Salt::new(algorithm, salt).extract(key);
    let info = [info];
    let okm = prk
        .expand(&info, Len(bytes))
        .map_err(|_| op_error("HKDF: expansion failed"))?;
    let mut out = vec![0; bytes];
    okm.fill(&mut out)
        .map_err(|_| op_error("HKDF: expansion failed"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// NIST SP 800-38A, F.2.1 (CBC-AES128.Encrypt), the first two blocks; PKCS#7 adds a block
    /// of padding to whole blocks, and a wrong key fails on it.
    #[test]
    fn aes_cbc_answers_the_nist_vectors() {
        let key = unhex("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = unhex("000102030405060708090a0b0c0d0e0f");
        let plain = unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let sealed = aes_cbc(true, &key, &iv, &plain).unwrap();
        assert_eq!(
            sealed[..32],
            unhex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2")
        );
        assert_eq!(sealed.len(), 48);
        assert_eq!(aes_cbc(false, &key, &iv, &sealed).unwrap(), plain);
        assert!(aes_cbc(false, &[0; 16], &iv, &sealed).is_err());
        assert!(aes_cbc(true, &key, &iv[..12], &plain).is_err());
        // Ciphertexts that are no whole number of blocks, or none, are refused, not a panic.
        for len in [0, 1, 15, 17, 47] {
            assert!(aes_cbc(false, &key, &iv, &sealed[..len]).is_err(), "{len}");
        }
        assert!(aes_cbc(true, &key[..10], &iv, &plain).is_err());
    }

    /// NIST SP 800-38A, F.5.1 (CTR-AES128.Encrypt); a counter of `length` bits wraps to zero
    /// and leaves the rest of the block alone, and more blocks than its values are refused.
    #[test]
    fn aes_ctr_answers_the_nist_vectors_and_wraps_its_counter_bits() {
        let key = unhex("2b7e151628aed2a6abf7158809cf4f3c");
        let counter = unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
        let plain = unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let sealed = aes_ctr(&key, &counter, 128, &plain).unwrap();
        assert_eq!(
            sealed,
            unhex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff")
        );
        assert_eq!(aes_ctr(&key, &counter, 128, &sealed).unwrap(), plain);
        // With an 8-bit counter, the block after ...ff is ...00, not the 128-bit increment.
        let wrapped = aes_ctr(&key, &counter, 8, &plain).unwrap();
        let mut second = counter.clone();
        second[15] = 0;
        assert_eq!(wrapped[..16], sealed[..16]);
        assert_eq!(
            wrapped[16..],
            aes_ctr(&key, &second, 8, &plain[16..]).unwrap()
        );
        assert_ne!(wrapped[16..], sealed[16..]);
        assert!(aes_ctr(&key, &counter, 1, &[0; 33]).is_err());
        assert!(aes_ctr(&key, &counter, 1, &[0; 32]).is_ok());
        assert!(aes_ctr(&key, &counter, 0, &plain).is_err());
        assert!(aes_ctr(&key, &counter, 129, &plain).is_err());
    }

    /// Two parties' P-256 keys (RFC 7517 A.2 and RFC 7515 A.3) agree on one secret, whichever
    /// side derives it; a point that is not on the curve is refused.
    #[test]
    fn ecdh_agrees_both_ways() {
        // (x, y, d) as hex.
        let key = |x: &str, y: &str, d: &str| {
            let public = [vec![4], unhex(x), unhex(y)].concat();
            let pkcs8 = pkcs8_from_jwk("P-256", &[unhex(d), public.clone()]).unwrap();
            (pkcs8, public)
        };
        let (alice, alice_public) = key(
            "30a0424cd21c2944838a2d75c92b37e76ea20d9f00893a3b4eee8a3c0aafec3e",
            "e04b65e92456d9888b52b379bdfbd51ee869ef1f0fc65b6659695b6cce081723",
            "f3bd0c07a81fb932781ed52752f60cc89a6be5e51934fe01938ddb55d8f77801",
        );
        let (bob, bob_public) = key(
            "7fcdce2770f6c45d4183cbee6fdb4b7b580733357be9ef13bacf6e3c7bd15445",
            "c7f144cd1bbd9b7e872cdfedb9eeb9f4b3695d6ea90b24ad8a4623288588e5ad",
            "8e9b109e719098bf980487df1f5d77e9cb29606ebed2263b5f57c213df84f4b2",
        );
        let shared = ecdh_p256(&alice, &bob_public).unwrap();
        assert_eq!(
            shared,
            unhex("1aacf0cd8f162ba558747db9dee37a56a79e4bce8c14036575764fd4973dd570")
        );
        assert_eq!(ecdh_p256(&bob, &alice_public).unwrap(), shared);
        let mut off_curve = bob_public.clone();
        off_curve[64] ^= 1;
        assert!(ecdh_p256(&alice, &off_curve).is_err());
    }

    /// RFC 7748, section 6.1: Alice's and Bob's keys agree on the RFC's secret, through PKCS#8
    /// made from their JWK members; the all-zero point (small order) is refused.
    #[test]
    fn x25519_answers_the_rfc_vector() {
        let alice = unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let alice_public =
            unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let bob = unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let bob_public = unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let alice = pkcs8_from_jwk("X25519", &[alice, alice_public.clone()]).unwrap();
        let bob = pkcs8_from_jwk("X25519", &[bob, bob_public.clone()]).unwrap();
        let shared = unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(x25519_derive(&alice, &bob_public).unwrap(), shared);
        assert_eq!(x25519_derive(&bob, &alice_public).unwrap(), shared);
        assert!(x25519_derive(&alice, &[0; 32]).is_err());
        assert!(x25519_derive(&alice, &[9; 31]).is_err());
        // A public key that is not the private key's is refused on import.
        assert!(pkcs8_from_jwk("X25519", &[vec![1; 32], bob_public]).is_err());
        let (generated, public) = x25519_generate().unwrap();
        assert_eq!(jwk_from_pkcs8("X25519", &generated).unwrap()[1], public);
    }

    /// RFC 3394, 4.1 (128-bit data with a 128-bit KEK); a wrong KEK fails the integrity check.
    #[test]
    fn aes_kw_answers_the_rfc_vector() {
        let kek = unhex("000102030405060708090a0b0c0d0e0f");
        let data = unhex("00112233445566778899aabbccddeeff");
        let wrapped = aes_kw(true, &kek, &data).unwrap();
        assert_eq!(
            wrapped,
            unhex("1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5")
        );
        assert_eq!(aes_kw(false, &kek, &wrapped).unwrap(), data);
        assert!(aes_kw(false, &[1; 16], &wrapped).is_err());
        assert!(aes_kw(true, &kek, &data[..12]).is_err());
        for len in [0, 1, 8, 15, 16, 23, 25] {
            assert!(
                aes_kw(false, &kek, &wrapped.repeat(2)[..len]).is_err(),
                "{len}"
            );
        }
    }

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
            aes_gcm(false, &key, &iv, b"aad", &tampered)
                .unwrap_err()
                .name(),
            "OperationError"
        );
        assert_eq!(
            aes_gcm(true, &[0; 5], &iv, b"", b"").unwrap_err().name(),
            "DataError"
        );
        assert_eq!(
            aes_gcm(true, &key, &[0; 16], b"", b"").unwrap_err().name(),
            "NotSupportedError"
        );
    }

    #[test]
    fn rsa_public_keys_outside_what_ring_verifies_are_refused() {
        let mut n = vec![0xff; 256];
        assert!(rsa_public_check(&n, &[1, 0, 1]).is_ok(), "2048 bits");
        assert!(rsa_public_check(&n, &[2]).is_err(), "even exponent");
        assert!(rsa_public_check(&n, &[1]).is_err(), "exponent 1");
        n[0] = 0x7f;
        assert_eq!(
            rsa_public_check(&n, &[3]).unwrap_err().name(),
            "DataError",
            "2047 bits"
        );
        let mut padded = vec![0, 0];
        padded.extend(vec![0x80; 256]);
        assert!(rsa_public_check(&padded, &[3]).is_ok(), "leading zeros");
    }

    #[test]
    fn spki_round_trips_and_refuses_garbage() {
        let (_, ed) = ed25519_generate().unwrap();
        let (_, p256) = p256_generate().unwrap();
        for key in [SpkiKey::Ed25519(ed), SpkiKey::P256(p256)] {
            assert_eq!(spki_decode(&spki_encode(&key).unwrap()).unwrap(), key);
        }
        let rsa = SpkiKey::Rsa {
            n: [vec![0xc1], vec![0x55; 255]].concat(),
            e: vec![1, 0, 1],
        };
        assert_eq!(spki_decode(&spki_encode(&rsa).unwrap()).unwrap(), rsa);
        assert_eq!(spki_decode(b"not der").unwrap_err().name(), "DataError");
    }

    #[test]
    fn private_keys_convert_between_pkcs8_and_jwk() {
        let (ed, _) = ed25519_generate().unwrap();
        let (p256, _) = p256_generate().unwrap();
        for (kind, der) in [("Ed25519", ed), ("P-256", p256)] {
            let parts = jwk_from_pkcs8(kind, &der).unwrap();
            let again = pkcs8_from_jwk(kind, &parts).unwrap();
            assert_eq!(jwk_from_pkcs8(kind, &again).unwrap(), parts, "{kind}");
            let mut wrong = parts.clone();
            wrong[0][0] ^= 1;
            assert_eq!(
                pkcs8_from_jwk(kind, &wrong).unwrap_err().name(),
                "DataError",
                "{kind}"
            );
        }
        assert_eq!(
            private_key_check("RSA", b"junk").unwrap_err().name(),
            "DataError"
        );
        assert_eq!(
            jwk_from_pkcs8("RSA", b"junk").unwrap_err().name(),
            "DataError"
        );
    }

    #[test]
    fn key_derivation_matches_the_rfc_vectors() {
        // RFC 6070, PBKDF2-HMAC-SHA1 test 2 ("password", "salt", 2 iterations, 20 bytes).
        assert_eq!(
            hex::encode(pbkdf2("SHA-1", b"password", b"salt", 2, 20).unwrap()),
            "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"
        );
        // RFC 5869 test case 1 (HKDF-SHA256).
        let okm = hkdf(
            "SHA-256",
            &[0x0b; 22],
            &hex::decode("000102030405060708090a0b0c").unwrap(),
            &hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap(),
            42,
        )
        .unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        for (iterations, bytes) in [(MAX_PBKDF2_ITERATIONS + 1, 32), (100_000, 32 * 5), (0, 32)] {
            assert_eq!(
                pbkdf2("SHA-256", b"p", b"s", iterations, bytes)
                    .unwrap_err()
                    .name(),
                "NotSupportedError",
                "{iterations} x {bytes}"
            );
        }
        assert_eq!(
            hkdf("SHA-256", b"k", b"", b"", 255 * 32 + 1)
                .unwrap_err()
                .name(),
            "OperationError"
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
