//! Message encryption for Web Push (RFC 8291) in the `aes128gcm` content coding (RFC 8188).
//!
//! The sender (the vsc server, the "application server") makes a fresh P-256 key pair and a
//! random salt for every message, agrees a secret with the browser's subscription key, mixes in
//! the subscription's authentication secret and encrypts the whole message as a single record.
//! The body is `salt (16) || rs (4, = 4096) || idlen (1, = 65) || sender public key (65) ||
//! AES-128-GCM(plaintext || 0x02)`.
//!
//! [`ReceiverKeys::decrypt`] is the browser's side of the same exchange. The server never needs
//! it; it is here for the phone app's own use and so that the tests can open what is sent.

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::hkdf::{self, HKDF_SHA256, KeyType, Salt};
use zeroize::Zeroizing;

use crate::subscription::{AUTH_SECRET_LEN, AuthSecret, UNCOMPRESSED_POINT_LEN, UaPublicKey};

/// The record size written in every header: RFC 8291 §4 fixes Web Push messages to one record
/// of at most 4096 bytes.
pub const RECORD_SIZE: u32 = 4096;

/// Length of the header block: salt, record size, key id length, sender public key.
pub const HEADER_LEN: usize = SALT_LEN + 4 + 1 + UNCOMPRESSED_POINT_LEN;

/// The largest plaintext that fits: push services take bodies of at most 4096 bytes, and the
/// header (86), the padding delimiter (1) and the GCM tag (16) come out of that (RFC 8291 §4).
pub const MAX_PLAINTEXT_LEN: usize = RECORD_SIZE as usize - HEADER_LEN - 1 - TAG_LEN;

const SALT_LEN: usize = 16;
const TAG_LEN: usize = 16;
const CEK_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const IKM_LEN: usize = 32;
/// RFC 8188 §2: the delimiter that ends the padding of the last record.
const LAST_RECORD_DELIMITER: u8 = 0x02;
/// RFC 8188 §2: the delimiter of any record but the last.
const NOT_LAST_RECORD_DELIMITER: u8 = 0x01;

/// Why a message could not be encrypted or decrypted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EceError {
    /// The plaintext does not fit in one Web Push record.
    #[error("the push message is {len} bytes; at most {max} fit in one Web Push record")]
    PlaintextTooLarge {
        /// The plaintext's length.
        len: usize,
        /// [`MAX_PLAINTEXT_LEN`].
        max: usize,
    },
    /// The body is shorter than its header, or than its header says.
    #[error("the encrypted body is truncated ({0} bytes)")]
    Truncated(usize),
    /// The header's key id is not a 65-byte P-256 public key.
    #[error(
        "the encrypted body's key id is {0} bytes; Web Push uses the sender's 65-byte P-256 key"
    )]
    KeyIdLength(u8),
    /// The header's record size is below RFC 8188's minimum of 18.
    #[error("the encrypted body's record size {0} is below the minimum of 18")]
    RecordSizeTooSmall(u32),
    /// The body holds more than one record, which Web Push does not use.
    #[error("the encrypted body holds more than one record; Web Push messages are a single record")]
    MoreThanOneRecord,
    /// The sender's public key in the header is not a point on P-256.
    #[error("the sender's public key in the encrypted body is not a point on P-256")]
    SenderKeyInvalid,
    /// The record does not authenticate: wrong keys, wrong auth secret or altered bytes.
    #[error(
        "the push message does not decrypt: wrong keys or auth secret, or the ciphertext was altered"
    )]
    Decryption,
    /// The decrypted record has no padding delimiter, or one that is not the last record's.
    #[error("the decrypted record does not end with the last-record padding delimiter 0x02")]
    BadPadding,
    /// A receiver's stored private key is not a P-256 scalar.
    #[error("the receiver's private key is not a 32-byte P-256 scalar")]
    ReceiverKeyInvalid,
    /// A receiver's stored auth secret is not 16 bytes.
    #[error("the receiver's auth secret is {0} bytes; it must be 16")]
    ReceiverAuthSecretLength(usize),
    /// The cryptographic library failed (random numbers, key agreement or key derivation).
    #[error("the cryptographic library failed while {0}")]
    Crypto(&'static str),
}

/// HKDF output of a given length (aws-lc-rs asks for the length through this trait).
struct OutputLen(usize);

impl KeyType for OutputLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand(prk, info, N) into a buffer that is wiped when dropped.
fn expand<const N: usize>(prk: &hkdf::Prk, info: &[u8]) -> Result<Zeroizing<[u8; N]>, EceError> {
    let mut out = Zeroizing::new([0u8; N]);
    prk.expand(&[info], OutputLen(N))
        .and_then(|okm| okm.fill(out.as_mut()))
        .map_err(|_| EceError::Crypto("deriving keys"))?;
    Ok(out)
}

/// The content-encryption key and nonce of one message.
pub(crate) struct ContentKeys {
    pub(crate) cek: Zeroizing<[u8; CEK_LEN]>,
    pub(crate) nonce: Zeroizing<[u8; NONCE_LEN]>,
}

/// RFC 8291 §3.3: the input keying material, from the ECDH secret and the auth secret, bound to
/// both public keys.
pub(crate) fn derive_ikm(
    ecdh_secret: &[u8],
    auth: &[u8; AUTH_SECRET_LEN],
    ua_public: &[u8; UNCOMPRESSED_POINT_LEN],
    as_public: &[u8; UNCOMPRESSED_POINT_LEN],
) -> Result<Zeroizing<[u8; IKM_LEN]>, EceError> {
    let prk_key = Salt::new(HKDF_SHA256, auth).extract(ecdh_secret);
    let mut key_info = Vec::with_capacity(14 + 2 * UNCOMPRESSED_POINT_LEN);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(as_public);
    expand::<IKM_LEN>(&prk_key, &key_info)
}

/// RFC 8188 §2.2 and §2.3: the content-encryption key and nonce from the IKM and the salt.
pub(crate) fn derive_content_keys(
    ikm: &[u8; IKM_LEN],
    salt: &[u8; SALT_LEN],
) -> Result<ContentKeys, EceError> {
    let prk = Salt::new(HKDF_SHA256, salt).extract(ikm);
    Ok(ContentKeys {
        cek: expand::<CEK_LEN>(&prk, b"Content-Encoding: aes128gcm\0")?,
        nonce: expand::<NONCE_LEN>(&prk, b"Content-Encoding: nonce\0")?,
    })
}

/// ECDH between `private` and the 65-byte `peer` point, the shared secret wiped when dropped.
fn ecdh(
    private: &PrivateKey,
    peer: &[u8; UNCOMPRESSED_POINT_LEN],
    invalid_peer: EceError,
) -> Result<Zeroizing<Vec<u8>>, EceError> {
    agreement::agree(
        private,
        UnparsedPublicKey::new(&ECDH_P256, peer),
        invalid_peer,
        |secret| Ok(Zeroizing::new(secret.to_vec())),
    )
}

fn aead_key(cek: &[u8; CEK_LEN]) -> Result<LessSafeKey, EceError> {
    UnboundKey::new(&AES_128_GCM, cek)
        .map(LessSafeKey::new)
        .map_err(|_| EceError::Crypto("loading the content key"))
}

fn public_point(private: &PrivateKey) -> Result<[u8; UNCOMPRESSED_POINT_LEN], EceError> {
    let public = private
        .compute_public_key()
        .map_err(|_| EceError::Crypto("computing a public key"))?;
    public
        .as_ref()
        .try_into()
        .map_err(|_| EceError::Crypto("computing a public key"))
}

/// Encrypts `plaintext` for a subscription's keys, with a fresh sender key pair and salt.
pub fn encrypt(ua: &UaPublicKey, auth: &AuthSecret, plaintext: &[u8]) -> Result<Vec<u8>, EceError> {
    let sender = PrivateKey::generate(&ECDH_P256)
        .map_err(|_| EceError::Crypto("generating the sender's key pair"))?;
    let mut salt = [0u8; SALT_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| EceError::Crypto("generating the salt"))?;
    encrypt_with(ua, auth, plaintext, &sender, &salt)
}

/// [`encrypt`] with the sender's key pair and salt given: for the RFC's fixed test vector.
/// Reusing a key pair and salt across messages would reuse the key and nonce, so only
/// [`encrypt`] is public.
pub(crate) fn encrypt_with(
    ua: &UaPublicKey,
    auth: &AuthSecret,
    plaintext: &[u8],
    sender: &PrivateKey,
    salt: &[u8; SALT_LEN],
) -> Result<Vec<u8>, EceError> {
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(EceError::PlaintextTooLarge {
            len: plaintext.len(),
            max: MAX_PLAINTEXT_LEN,
        });
    }
    let as_public = public_point(sender)?;
    // The subscription key was checked when parsed, so a failure here is the library's.
    let secret = ecdh(sender, ua.as_bytes(), EceError::Crypto("agreeing a key"))?;
    let ikm = derive_ikm(&secret, auth.as_bytes(), ua.as_bytes(), &as_public)?;
    let keys = derive_content_keys(&ikm, salt)?;

    let mut body = Vec::with_capacity(HEADER_LEN + plaintext.len() + 1 + TAG_LEN);
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(UNCOMPRESSED_POINT_LEN as u8);
    body.extend_from_slice(&as_public);
    let mut record = Vec::with_capacity(plaintext.len() + 1 + TAG_LEN);
    record.extend_from_slice(plaintext);
    record.push(LAST_RECORD_DELIMITER);
    aead_key(&keys.cek)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(*keys.nonce),
            Aad::empty(),
            &mut record,
        )
        .map_err(|_| EceError::Crypto("encrypting"))?;
    body.extend_from_slice(&record);
    Ok(body)
}

/// The receiving side's keys: a P-256 key pair and an auth secret, as a browser makes for each
/// push subscription.
pub struct ReceiverKeys {
    private: PrivateKey,
    public: UaPublicKey,
    auth: AuthSecret,
}

impl std::fmt::Debug for ReceiverKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverKeys")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl ReceiverKeys {
    /// A fresh key pair and auth secret.
    pub fn generate() -> Result<Self, EceError> {
        let private = PrivateKey::generate(&ECDH_P256)
            .map_err(|_| EceError::Crypto("generating a key pair"))?;
        let mut auth = Zeroizing::new([0u8; AUTH_SECRET_LEN]);
        aws_lc_rs::rand::fill(auth.as_mut())
            .map_err(|_| EceError::Crypto("generating the auth secret"))?;
        Self::from_parts(private, auth.as_slice())
    }

    /// Keys from a stored 32-byte private scalar and auth secret.
    pub fn from_private_scalar(scalar: &[u8], auth: &[u8]) -> Result<Self, EceError> {
        let private = PrivateKey::from_private_key(&ECDH_P256, scalar)
            .map_err(|_| EceError::ReceiverKeyInvalid)?;
        Self::from_parts(private, auth)
    }

    fn from_parts(private: PrivateKey, auth: &[u8]) -> Result<Self, EceError> {
        let public = UaPublicKey::from_bytes(&public_point(&private)?)
            .map_err(|_| EceError::Crypto("computing a public key"))?;
        let auth = AuthSecret::from_bytes(auth)
            .map_err(|_| EceError::ReceiverAuthSecretLength(auth.len()))?;
        Ok(Self {
            private,
            public,
            auth,
        })
    }

    /// The private scalar, big-endian, for storage (wiped when dropped).
    pub fn private_scalar(&self) -> Result<Zeroizing<Vec<u8>>, EceError> {
        let bin: aws_lc_rs::encoding::EcPrivateKeyBin<'static> = self
            .private
            .as_be_bytes()
            .map_err(|_| EceError::Crypto("exporting the private key"))?;
        Ok(Zeroizing::new(bin.as_ref().to_vec()))
    }

    /// The public key (what the subscription calls `p256dh`).
    pub fn public_key(&self) -> &UaPublicKey {
        &self.public
    }

    /// The auth secret.
    pub fn auth_secret(&self) -> &AuthSecret {
        &self.auth
    }

    /// Opens an `aes128gcm` Web Push body addressed to these keys.
    pub fn decrypt(&self, body: &[u8]) -> Result<Zeroizing<Vec<u8>>, EceError> {
        if body.len() < SALT_LEN + 5 {
            return Err(EceError::Truncated(body.len()));
        }
        let (salt, rest) = body.split_at(SALT_LEN);
        let (rs, rest) = rest.split_at(4);
        let record_size = u32::from_be_bytes([rs[0], rs[1], rs[2], rs[3]]);
        let key_id_len = rest[0];
        let rest = &rest[1..];
        if usize::from(key_id_len) != UNCOMPRESSED_POINT_LEN {
            return Err(EceError::KeyIdLength(key_id_len));
        }
        if record_size < 18 {
            return Err(EceError::RecordSizeTooSmall(record_size));
        }
        if rest.len() < UNCOMPRESSED_POINT_LEN + TAG_LEN + 1 {
            return Err(EceError::Truncated(body.len()));
        }
        let (as_public, ciphertext) = rest.split_at(UNCOMPRESSED_POINT_LEN);
        // A full-size record followed by more bytes would be a second record.
        if ciphertext.len() > record_size as usize {
            return Err(EceError::MoreThanOneRecord);
        }
        let as_public: [u8; UNCOMPRESSED_POINT_LEN] = as_public
            .try_into()
            .map_err(|_| EceError::Truncated(body.len()))?;
        let salt: [u8; SALT_LEN] = salt
            .try_into()
            .map_err(|_| EceError::Truncated(body.len()))?;

        let secret = ecdh(&self.private, &as_public, EceError::SenderKeyInvalid)?;
        let ikm = derive_ikm(
            &secret,
            self.auth.as_bytes(),
            self.public.as_bytes(),
            &as_public,
        )?;
        let keys = derive_content_keys(&ikm, &salt)?;
        let mut record = Zeroizing::new(ciphertext.to_vec());
        let opened_len = aead_key(&keys.cek)?
            .open_in_place(
                Nonce::assume_unique_for_key(*keys.nonce),
                Aad::empty(),
                record.as_mut_slice(),
            )
            .map_err(|_| EceError::Decryption)?
            .len();
        record.truncate(opened_len);
        // RFC 8188 §2: padding is zeros before the delimiter; strip them, then the delimiter.
        let delimiter_at = record
            .iter()
            .rposition(|&b| b != 0)
            .ok_or(EceError::BadPadding)?;
        match record[delimiter_at] {
            LAST_RECORD_DELIMITER => {}
            NOT_LAST_RECORD_DELIMITER => return Err(EceError::MoreThanOneRecord),
            _ => return Err(EceError::BadPadding),
        }
        record.truncate(delimiter_at);
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use aws_lc_rs::hmac;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// RFC 8291 Appendix A, every value as the RFC prints it (base64url).
    mod rfc8291 {
        pub const PLAINTEXT: &str = "When I grow up, I want to be a watermelon";
        pub const AS_PUBLIC: &str = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
        pub const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
        pub const UA_PUBLIC: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
        pub const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
        pub const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
        pub const AUTH_SECRET: &str = "BTBZMqHH6r4Tts7J_aSIgg";
        pub const ECDH_SECRET: &str = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs";
        pub const PRK_KEY: &str = "Snr3JMxaHVDXHWJn5wdC52WjpCtd2EIEGBykDcZW32k";
        pub const IKM: &str = "S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg";
        pub const PRK: &str = "09_eUZGrsvxChDCGRCdkLiDXrReGOEVeSCdCcPBSJSc";
        pub const CEK: &str = "oIhVW04MRdy2XN9CiKLxTg";
        pub const NONCE: &str = "4h_95klXJ5E_qnoN";
        pub const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";
    }

    fn b64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    fn rfc_receiver() -> ReceiverKeys {
        ReceiverKeys::from_private_scalar(&b64(rfc8291::UA_PRIVATE), &b64(rfc8291::AUTH_SECRET))
            .unwrap()
    }

    fn rfc_sender() -> PrivateKey {
        PrivateKey::from_private_key(&ECDH_P256, &b64(rfc8291::AS_PRIVATE)).unwrap()
    }

    /// HKDF-Extract is HMAC-SHA-256 keyed with the salt (RFC 5869); aws-lc-rs keeps its PRKs
    /// opaque, so the RFC's PRK values are checked this way.
    fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt), ikm)
            .as_ref()
            .to_vec()
    }

    #[test]
    fn rfc8291_key_pairs_match() {
        assert_eq!(
            rfc_receiver().public_key().as_bytes().as_slice(),
            b64(rfc8291::UA_PUBLIC)
        );
        assert_eq!(
            public_point(&rfc_sender()).unwrap().to_vec(),
            b64(rfc8291::AS_PUBLIC)
        );
        assert_eq!(
            *rfc_receiver().private_scalar().unwrap(),
            b64(rfc8291::UA_PRIVATE)
        );
    }

    #[test]
    fn rfc8291_intermediate_values_match() {
        let ua: [u8; 65] = b64(rfc8291::UA_PUBLIC).try_into().unwrap();
        let as_public: [u8; 65] = b64(rfc8291::AS_PUBLIC).try_into().unwrap();
        let auth: [u8; 16] = b64(rfc8291::AUTH_SECRET).try_into().unwrap();
        let salt: [u8; 16] = b64(rfc8291::SALT).try_into().unwrap();

        let secret = ecdh(&rfc_sender(), &ua, EceError::SenderKeyInvalid).unwrap();
        assert_eq!(*secret, b64(rfc8291::ECDH_SECRET));
        // The browser's side agrees on the same secret.
        let other_way = ecdh(
            &rfc_receiver().private,
            &as_public,
            EceError::SenderKeyInvalid,
        );
        assert_eq!(*other_way.unwrap(), b64(rfc8291::ECDH_SECRET));

        assert_eq!(hkdf_extract(&auth, &secret), b64(rfc8291::PRK_KEY));
        let ikm = derive_ikm(&secret, &auth, &ua, &as_public).unwrap();
        assert_eq!(ikm.to_vec(), b64(rfc8291::IKM));
        assert_eq!(hkdf_extract(&salt, ikm.as_ref()), b64(rfc8291::PRK));
        let keys = derive_content_keys(&ikm, &salt).unwrap();
        assert_eq!(keys.cek.to_vec(), b64(rfc8291::CEK));
        assert_eq!(keys.nonce.to_vec(), b64(rfc8291::NONCE));
    }

    #[test]
    fn rfc8291_message_is_reproduced_byte_for_byte() {
        let ua = UaPublicKey::from_base64url(rfc8291::UA_PUBLIC).unwrap();
        let auth = AuthSecret::from_base64url(rfc8291::AUTH_SECRET).unwrap();
        let salt: [u8; 16] = b64(rfc8291::SALT).try_into().unwrap();
        let body = encrypt_with(
            &ua,
            &auth,
            rfc8291::PLAINTEXT.as_bytes(),
            &rfc_sender(),
            &salt,
        )
        .unwrap();
        assert_eq!(URL_SAFE_NO_PAD.encode(&body), rfc8291::BODY);
    }

    #[test]
    fn rfc8291_message_decrypts() {
        let plaintext = rfc_receiver().decrypt(&b64(rfc8291::BODY)).unwrap();
        assert_eq!(plaintext.as_slice(), rfc8291::PLAINTEXT.as_bytes());
    }

    /// A message from an independent sender (Python `cryptography`,
    /// `testdata/make_python_message.py`), with padding after the delimiter.
    #[test]
    fn python_message_decrypts() {
        let fixture = include_str!("../testdata/python_message.txt");
        let field = |name: &str| {
            fixture
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                .unwrap()
        };
        let receiver =
            ReceiverKeys::from_private_scalar(&b64(field("UA_PRIVATE")), &b64(field("AUTH")))
                .unwrap();
        let repeats: usize = field("PLAINTEXT_REPEATS").parse().unwrap();
        let expected = "Python cryptography sent this; ".repeat(repeats);
        let plaintext = receiver.decrypt(&b64(field("BODY"))).unwrap();
        assert_eq!(plaintext.as_slice(), expected.as_bytes());
    }

    #[test]
    fn fresh_keys_round_trip_and_differ_each_time() {
        let receiver = ReceiverKeys::generate().unwrap();
        let message = br#"{"request_id":"abc"}"#;
        let a = encrypt(receiver.public_key(), receiver.auth_secret(), message).unwrap();
        let b = encrypt(receiver.public_key(), receiver.auth_secret(), message).unwrap();
        assert_ne!(a, b, "fresh salt and sender key per message");
        assert_eq!(a.len(), HEADER_LEN + message.len() + 1 + TAG_LEN);
        assert_eq!(&a[16..21], &[0, 0, 0x10, 0, 65]);
        assert_eq!(receiver.decrypt(&a).unwrap().as_slice(), message);
        assert_eq!(receiver.decrypt(&b).unwrap().as_slice(), message);
        // The empty message and the largest one both fit.
        let empty = encrypt(receiver.public_key(), receiver.auth_secret(), b"").unwrap();
        assert!(receiver.decrypt(&empty).unwrap().is_empty());
        let largest = vec![0x5a; MAX_PLAINTEXT_LEN];
        let body = encrypt(receiver.public_key(), receiver.auth_secret(), &largest).unwrap();
        assert_eq!(body.len(), RECORD_SIZE as usize);
        assert_eq!(*receiver.decrypt(&body).unwrap(), largest);
    }

    #[test]
    fn oversized_message_is_refused() {
        let receiver = ReceiverKeys::generate().unwrap();
        let too_big = vec![0u8; MAX_PLAINTEXT_LEN + 1];
        assert_eq!(
            encrypt(receiver.public_key(), receiver.auth_secret(), &too_big),
            Err(EceError::PlaintextTooLarge {
                len: MAX_PLAINTEXT_LEN + 1,
                max: MAX_PLAINTEXT_LEN
            })
        );
    }

    #[test]
    fn tampering_and_wrong_keys_are_refused() {
        let receiver = rfc_receiver();
        let body = b64(rfc8291::BODY);
        for at in [0, 20, HEADER_LEN, body.len() - 1] {
            let mut altered = body.clone();
            altered[at] ^= 0x01;
            assert!(receiver.decrypt(&altered).is_err(), "byte {at} altered");
        }
        let mut altered = body.clone();
        altered[HEADER_LEN + 3] ^= 0x80;
        assert_eq!(receiver.decrypt(&altered), Err(EceError::Decryption));

        // Same private key, another auth secret.
        let wrong_auth = ReceiverKeys::from_private_scalar(&b64(rfc8291::UA_PRIVATE), &[7u8; 16]);
        assert_eq!(
            wrong_auth.unwrap().decrypt(&body),
            Err(EceError::Decryption)
        );
        // Stored receiver keys are checked.
        assert_eq!(
            ReceiverKeys::from_private_scalar(&[1u8; 31], &[7u8; 16]).err(),
            Some(EceError::ReceiverKeyInvalid)
        );
        assert_eq!(
            ReceiverKeys::from_private_scalar(&b64(rfc8291::UA_PRIVATE), &[7u8; 15]).err(),
            Some(EceError::ReceiverAuthSecretLength(15))
        );
        // Another private key.
        let stranger = ReceiverKeys::generate().unwrap();
        assert_eq!(stranger.decrypt(&body), Err(EceError::Decryption));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let receiver = rfc_receiver();
        let body = b64(rfc8291::BODY);
        assert_eq!(receiver.decrypt(&body[..10]), Err(EceError::Truncated(10)));
        assert_eq!(
            receiver.decrypt(&body[..HEADER_LEN + 5]),
            Err(EceError::Truncated(HEADER_LEN + 5))
        );
        let mut wrong_idlen = body.clone();
        wrong_idlen[20] = 33;
        assert_eq!(
            receiver.decrypt(&wrong_idlen),
            Err(EceError::KeyIdLength(33))
        );
        let mut small_rs = body.clone();
        small_rs[16..20].copy_from_slice(&17u32.to_be_bytes());
        assert_eq!(
            receiver.decrypt(&small_rs),
            Err(EceError::RecordSizeTooSmall(17))
        );
        let mut short_rs = body.clone();
        short_rs[16..20].copy_from_slice(&40u32.to_be_bytes());
        assert_eq!(
            receiver.decrypt(&short_rs),
            Err(EceError::MoreThanOneRecord)
        );
        let mut bad_key = body.clone();
        bad_key[21 + 64] ^= 0x01;
        assert_eq!(receiver.decrypt(&bad_key), Err(EceError::SenderKeyInvalid));
    }

    /// A record that decrypts but whose padding ends in 0x01 (not the last record) or has no
    /// delimiter at all is refused.
    #[test]
    fn padding_delimiters_are_checked() {
        let receiver = ReceiverKeys::generate().unwrap();
        let sender = PrivateKey::generate(&ECDH_P256).unwrap();
        let salt = [9u8; 16];
        let seal = |record: &[u8]| {
            let as_public = public_point(&sender).unwrap();
            let secret = ecdh(
                &sender,
                receiver.public_key().as_bytes(),
                EceError::Decryption,
            );
            let ikm = derive_ikm(
                &secret.unwrap(),
                receiver.auth_secret().as_bytes(),
                receiver.public_key().as_bytes(),
                &as_public,
            )
            .unwrap();
            let keys = derive_content_keys(&ikm, &salt).unwrap();
            let mut sealed = record.to_vec();
            aead_key(&keys.cek)
                .unwrap()
                .seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(*keys.nonce),
                    Aad::empty(),
                    &mut sealed,
                )
                .unwrap();
            let mut body = salt.to_vec();
            body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
            body.push(65);
            body.extend_from_slice(&as_public);
            body.extend_from_slice(&sealed);
            body
        };
        // Padding zeros after the delimiter are allowed.
        assert_eq!(
            receiver.decrypt(&seal(b"hi\x02\0\0\0")).unwrap().as_slice(),
            b"hi"
        );
        assert_eq!(
            receiver.decrypt(&seal(b"hi\x01")),
            Err(EceError::MoreThanOneRecord)
        );
        assert_eq!(receiver.decrypt(&seal(b"hi")), Err(EceError::BadPadding));
        assert_eq!(receiver.decrypt(&seal(b"\0\0")), Err(EceError::BadPadding));
    }
}
