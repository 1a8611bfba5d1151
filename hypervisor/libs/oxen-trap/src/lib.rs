//! Trap decoding: ESR classes, data-abort syndromes, SMCCC/PSCI calls
#![cfg_attr(not(test), no_std)]
