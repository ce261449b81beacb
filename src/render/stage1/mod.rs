//! Stage 1 of a node's first boot: the system setup (user, keys, hostname, Wi-Fi, locale),
//! by the route the image takes — `firstrun.sh` run through the kernel command line
//! (Bullseye, Bookworm) or a cloud-init NoCloud seed (Trixie). On cluster nodes it ends by
//! installing stage 2 ([`super::stage2`]).

pub(crate) mod cloudinit;
pub(crate) mod firstrun;
pub(crate) mod user;
