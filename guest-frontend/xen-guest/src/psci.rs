//! SMCCC calls (`hvc #0`, function id in w0) and the PSCI functions a small
//! guest uses. Xen and oxen advertise PSCI with `method = "hvc"` in the
//! guest's `/psci` node, so the conduit is `hvc #0`, not `smc`.
//!
//! Ids and return codes are from Arm DEN0022 (PSCI) and DEN0028 (SMCCC).

use core::fmt;

/// A way to make SMCCC calls: `hvc #0` on hardware, a recorder in tests.
///
/// SMCCC calls take no pointers in the functions used here, so the call
/// is safe.
pub trait Smccc {
    /// Call function `fid` with arguments x1..x3; returns x0..x3.
    fn smccc_call(&mut self, fid: u32, args: [u64; 3]) -> [u64; 4];
}

/// `PSCI_VERSION` (SMC32).
pub const PSCI_VERSION: u32 = 0x8400_0000;
/// `SYSTEM_OFF` (SMC32).
pub const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;
/// `SYSTEM_RESET` (SMC32).
pub const PSCI_SYSTEM_RESET: u32 = 0x8400_0009;

/// A PSCI error return.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PsciError {
    /// `NOT_SUPPORTED` (-1); also SMCCC's "unknown function".
    NotSupported,
    /// `INVALID_PARAMETERS` (-2).
    InvalidParameters,
    /// `DENIED` (-3).
    Denied,
    /// `INTERNAL_FAILURE` (-6).
    InternalFailure,
    /// Any other value, including a call that returned when it must not.
    Other(i32),
}

impl PsciError {
    /// Decode a PSCI return value (the low 32 bits of x0).
    pub const fn from_ret(ret: i32) -> Self {
        match ret {
            -1 => Self::NotSupported,
            -2 => Self::InvalidParameters,
            -3 => Self::Denied,
            -6 => Self::InternalFailure,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for PsciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSupported => f.write_str("NOT_SUPPORTED"),
            Self::InvalidParameters => f.write_str("INVALID_PARAMETERS"),
            Self::Denied => f.write_str("DENIED"),
            Self::InternalFailure => f.write_str("INTERNAL_FAILURE"),
            Self::Other(v) => write!(f, "PSCI error {v}"),
        }
    }
}

/// A PSCI version number.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PsciVersion {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
}

/// `PSCI_VERSION`: bits 31:16 major, 15:0 minor; negative means unsupported.
pub fn psci_version<C: Smccc>(c: &mut C) -> Result<PsciVersion, PsciError> {
    let ret = c.smccc_call(PSCI_VERSION, [0; 3])[0] as u32;
    if (ret as i32) < 0 {
        return Err(PsciError::from_ret(ret as i32));
    }
    Ok(PsciVersion {
        major: (ret >> 16) as u16,
        minor: (ret & 0xffff) as u16,
    })
}

/// `SYSTEM_OFF`. Returns only if the call failed (a 0 return, which a
/// conforming implementation never gives, is reported as `Other(0)`).
pub fn psci_system_off<C: Smccc>(c: &mut C) -> PsciError {
    PsciError::from_ret(c.smccc_call(PSCI_SYSTEM_OFF, [0; 3])[0] as u32 as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        calls: Vec<(u32, [u64; 3])>,
        ret: u64,
    }

    impl Smccc for Fake {
        fn smccc_call(&mut self, fid: u32, args: [u64; 3]) -> [u64; 4] {
            self.calls.push((fid, args));
            [self.ret, 0, 0, 0]
        }
    }

    #[test]
    fn version_decodes() {
        let mut f = Fake {
            calls: vec![],
            ret: 0x0001_0001,
        };
        assert_eq!(psci_version(&mut f), Ok(PsciVersion { major: 1, minor: 1 }));
        assert_eq!(f.calls, vec![(0x8400_0000, [0; 3])]);
        // SMCCC returns -1 sign-extended in x0, or only in w0.
        f.ret = u64::MAX;
        assert_eq!(psci_version(&mut f), Err(PsciError::NotSupported));
        f.ret = 0xffff_ffff;
        assert_eq!(psci_version(&mut f), Err(PsciError::NotSupported));
    }

    #[test]
    fn system_off_reports_failure() {
        let mut f = Fake {
            calls: vec![],
            ret: (-3i64) as u64,
        };
        assert_eq!(psci_system_off(&mut f), PsciError::Denied);
        assert_eq!(f.calls, vec![(0x8400_0008, [0; 3])]);
        f.ret = 0;
        assert_eq!(psci_system_off(&mut f), PsciError::Other(0));
        assert_eq!(PsciError::from_ret(-2).to_string(), "INVALID_PARAMETERS");
        assert_eq!(PsciError::from_ret(-6), PsciError::InternalFailure);
    }
}
