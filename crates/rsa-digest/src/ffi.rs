//! The only `unsafe` code in the workspace: seven AWS-LC calls behind a safe owner type.
//!
//! Why FFI at all: aws-lc-rs deliberately offers no SHA-1 RSA signing and no raw private-key
//! operation, and its RSA key type cannot be extended from outside (its encoding trait is
//! sealed). The alternatives were a second RSA implementation (the `rsa` crate, whose private
//! operations are not constant-time: RUSTSEC-2023-0071) or OpenSSL beside AWS-LC. Calling the
//! AWS-LC already linked into every binary keeps one constant-time, blinded implementation.
//!
//! Invariants: an [`RsaPrivateKey`] owns exactly one `EVP_PKEY` that holds an RSA key (checked
//! at construction) and frees it exactly once on drop; the key is never shared between threads
//! (the type is neither `Send` nor `Sync`, because it holds a raw pointer); every buffer passed
//! to C is a live Rust slice whose pointer and length come from the slice itself.
#![allow(unsafe_code)]

use aws_lc_sys::{
    CBS, CBS_init, EVP_PKEY, EVP_PKEY_free, EVP_PKEY_get0_RSA, EVP_parse_private_key,
    RSA_PKCS1_PADDING, RSA_sign_raw, RSA_size,
};

use crate::RsaError;

/// An RSA private key parsed from PKCS#8 by AWS-LC.
pub(crate) struct RsaPrivateKey {
    pkey: *mut EVP_PKEY,
}

impl RsaPrivateKey {
    /// Parses a PKCS#8 `PrivateKeyInfo`; refuses trailing bytes and non-RSA keys.
    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<RsaPrivateKey, RsaError> {
        let mut cbs = CBS {
            data: std::ptr::null(),
            len: 0,
        };
        // SAFETY: `cbs` is a valid, writable CBS; `der` is a live slice for the duration of the
        // call and CBS_init only records its pointer and length.
        unsafe { CBS_init(&mut cbs, der.as_ptr(), der.len()) };
        // SAFETY: `cbs` points into `der`, which outlives the call; EVP_parse_private_key
        // copies what it needs and returns an owned key or null.
        let pkey = unsafe { EVP_parse_private_key(&mut cbs) };
        if pkey.is_null() {
            aws_lc_sys_clear_errors();
            return Err(RsaError::InvalidKey);
        }
        let key = RsaPrivateKey { pkey };
        if cbs.len != 0 || key.rsa().is_null() {
            // `key` is dropped here, which frees `pkey`.
            return Err(RsaError::InvalidKey);
        }
        Ok(key)
    }

    /// The key's RSA structure, borrowed from the `EVP_PKEY` (null if it is not RSA).
    fn rsa(&self) -> *mut aws_lc_sys::RSA {
        // SAFETY: `self.pkey` is a valid EVP_PKEY owned by `self`; get0 does not transfer
        // ownership, and the returned pointer is only used while `self` is alive.
        unsafe { EVP_PKEY_get0_RSA(self.pkey) }
    }

    /// The modulus length in bytes.
    pub(crate) fn modulus_len(&self) -> usize {
        // SAFETY: `rsa()` is non-null for every constructed `RsaPrivateKey`.
        let size = unsafe { RSA_size(self.rsa()) };
        usize::try_from(size).unwrap_or(0)
    }

    /// Pads `payload` with PKCS#1 v1.5 type 1 and applies the private key (AWS-LC blinds the
    /// operation and checks the result against the public key).
    pub(crate) fn sign_padded_pkcs1(&self, payload: &[u8]) -> Result<Vec<u8>, RsaError> {
        let mut out = vec![0u8; self.modulus_len()];
        let mut out_len = 0usize;
        // SAFETY: `rsa()` is a valid RSA key owned through `self`; `out` is writable for
        // `out.len()` bytes and `payload` readable for `payload.len()` bytes; AWS-LC writes at
        // most `max_out` bytes and sets `out_len`.
        let ok = unsafe {
            RSA_sign_raw(
                self.rsa(),
                &mut out_len,
                out.as_mut_ptr(),
                out.len(),
                payload.as_ptr(),
                payload.len(),
                RSA_PKCS1_PADDING,
            )
        };
        if ok != 1 || out_len != out.len() {
            aws_lc_sys_clear_errors();
            return Err(RsaError::Operation);
        }
        Ok(out)
    }
}

impl Drop for RsaPrivateKey {
    fn drop(&mut self) {
        // SAFETY: `self.pkey` was returned non-null by EVP_parse_private_key, is owned by
        // `self` alone and is freed only here (AWS-LC zeroizes the key material it frees).
        unsafe { EVP_PKEY_free(self.pkey) };
    }
}

/// Drops AWS-LC's thread-local error queue so a refusal here is not reported by a later call.
fn aws_lc_sys_clear_errors() {
    // SAFETY: ERR_clear_error has no preconditions.
    unsafe { aws_lc_sys::ERR_clear_error() };
}
