//! The vpcd link: presents a [`VirtualCard`] to PC/SC through vsmartcard's vpcd, the pcscd
//! reader driver for virtual cards.
//!
//! vpcd (`libifdvpcd.so`, configured in `/etc/reader.conf.d/vpcd`) is a pcscd reader driver
//! whose "card" is at the other end of a TCP connection. [`run`] keeps that connection up: the
//! card is in the reader ("Virtual PCD 00 00") while the connection is open and removed when it
//! closes. The wire format: every message is a 2-byte big-endian length + payload; a 1-byte
//! payload from vpcd is a control message (`00` power off, `01` power on, `02` reset, `04` send
//! the ATR), anything longer a command APDU. Only the ATR request and APDUs get a reply.
//!
//! # What vpcd and pcscd do, and what this crate does about it
//!
//! References are to vsmartcard commit `a858628` (`virtualsmartcard/src/vpcd/vpcd.c`,
//! `src/ifd-vpcd/ifd-vpcd.c`), to the `virtualsmartcard-0.8` tag (Debian 12's
//! `vsmartcard-vpcd 3.3+dfsg-2` installs `libifdvpcd.so.0.8`) and to pcsc-lite 1.9.9.
//!
//! **One request at a time.** vpcd sends a request and then blocks reading its reply on the
//! same socket (`vicc_transmit`: `sendToVICC` then `recvFromVICC`). Its own `io_lock` is a
//! no-op in the shipped build (`lock.c` tests `HAVE_PTHREAD` without including `config.h`; the
//! Debian binary's `lock` is `mov $1,%eax; ret` and imports no pthread symbols), so the
//! serialisation comes from pcscd: vpcd declares its slots thread-safe
//! (`TAG_IFD_SLOT_THREAD_SAFE` = 1) and the driver not (`TAG_IFD_THREAD_SAFE` = 0), and pcscd
//! then gives each slot a mutex that every driver call takes (`ifdwrapper.c`: `IFDTransmit`,
//! `IFDStatusICC`, `IFDGetCapabilities`, `IFDPowerICC` all lock `rContext->mMutex`). So vpcd
//! never asks for the ATR while an APDU is outstanding on the same slot: pcscd's presence
//! poll (every 400 ms, `PCSCLITE_STATUS_POLL_RATE`; vpcd answers it with a get-ATR,
//! `vicc_present`) simply waits for the APDU — for two minutes, if the phone takes that long —
//! and the card does not look removed meanwhile (tried: during a card's 3 s APDU vpcd sent
//! nothing at all).
//!
//! The link therefore answers strictly in request order, which is what vpcd's reader expects
//! (it takes the next frame on the socket as the reply to what it sent last). The ATR is
//! cached ([`VirtualCard::atr`] is read when a connection starts and after power-on and reset)
//! and answered without involving the card. While the card works on an APDU the link keeps
//! reading the socket: a request that arrives then (vpcd never sends one) is queued and
//! answered right after the APDU's response; a closed connection or a stop cancels the
//! pending [`VirtualCard::transmit`] at once.
//!
//! **Power.** pcscd powers the card on when an application connects (`01`, then `04`) and off
//! once no application uses it (`00`; pcscd's on-demand power-off in `eventhandler.c`, seen
//! within a second of the application disconnecting), so a verified PIN does not outlive the
//! applications that use the card.
//!
//! **No timeouts.** vpcd sets no socket timeouts and reads with a blocking
//! `recv(…, MSG_WAITALL)`; pcscd calls `IFDHTransmitToICC` without a time limit; the client
//! library waits for pcscd's answer with `poll(…, -1)` (`winscard_msg.c`, `MessageReceive`).
//! A two-minute phone approval therefore arrives intact as far as PC/SC is concerned (tried:
//! `opensc-tool --send-apdu` got its `90 00` after a card took 125 s); only the application on
//! top (a browser's TLS handshake, a middleware call) may give up earlier. While it waits, the
//! slot's mutex is held in pcscd: anything else that calls into that slot's driver waits too.
//! That includes OpenSC's reader enumeration, which connects to every reader to ask for its
//! features (`opensc-tool --list-readers` took 6.7 s during an 8 s APDU), so a second
//! OpenSC-based application starting meanwhile hangs until the phone answers. Other readers,
//! vpcd's second slot included, are not affected.
//!
//! **Replies vpcd misreads.** A zero-length reply to a get-ATR or an APDU makes vpcd close the
//! connection (`vicc_transmit`: `r <= 0` → `vicc_eject`); an ATR longer than 33 bytes is
//! refused. The link checks the ATR ([`LinkError::InvalidAtr`]) and sends `6F 00` in place of a
//! response APDU shorter than two bytes or longer than a frame.
//!
//! **The listener is on all interfaces.** In its default mode vpcd binds `INADDR_ANY`
//! (`opensock`), port 35963 for slot 0 and 35964 for slot 1, with a backlog of 0, and accepts
//! one card per slot during pcscd's presence poll. Anyone who can reach the workstation on
//! those ports can insert a card of their choosing into an unoccupied slot (a forged PIV card
//! offering their own certificate), or take the slot first so that ours sits in the kernel's
//! backlog, connected but never served (the link warns after 5 s of silence). The card side
//! sees only what vpcd sends, so nothing leaks *from* our card that way. Mitigations: firewall
//! the two ports to loopback, or use reversed mode. [`run`] refuses non-loopback addresses in
//! both modes ([`LinkError::NotLoopback`]): APDUs, PIN VERIFY included, travel in clear.
//!
//! **Reversed mode** ([`Mode::Listen`]): a reader entry `DEVICENAME 127.0.0.1:<port>` (any host
//! other than `/dev/null` before the colon) makes vpcd connect to the card instead
//! (`IFDHCreateChannelByName`), slot 0 to `<port>` and slot 1 to `<port>+1`, IPv4 only
//! (`connectsock` uses `AF_INET`), reconnecting on every presence poll. Two caveats found by
//! running it: vpcd's state is global per loaded library (`static struct vicc_ctx *ctx[]`), so
//! a second vpcd reader in one pcscd needs its own copy of `libifdvpcd.so` (with the same
//! `LIBPATH` the second entry silently takes over the first's slots); and vpcd before
//! virtualsmartcard 0.9 (commit `76543ea`, "Fix issue with allowing reconnects from client to
//! a server") treats the reversed-mode context as a listener once its connection is gone and
//! calls `FD_SET(-1)`, which glibc's fortify check turns into an abort: **pcscd dies as soon
//! as a reversed-mode card disconnects or its port refuses** (slot 1's port included). Debian
//! 12's vpcd is such a release, so there reversed mode is unusable and `scripts/pcscd-up`
//! refuses to configure it.
//!
//! **pcscd must outlive its clients.** Debian's socket-activated `pcscd.service` runs
//! `pcscd --auto-exit`, which exits 60 s after its last PC/SC client; vpcd goes with it and the
//! link reconnects when pcscd next starts. `scripts/pcscd-up` starts a pcscd without
//! `--auto-exit`.

pub mod frame;
mod link;

pub use link::{DEFAULT_VPCD_ADDR, LinkConfig, LinkError, MAX_ATR_LEN, Mode, VirtualCard, run};

#[cfg(test)]
mod tests;
