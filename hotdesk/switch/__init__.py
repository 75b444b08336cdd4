"""What lives on the switch and what hotdesk reads from or writes to it: voicemail PINs,
users' SIP accounts, the idle accounts of hot-desk phones, registrations, and the checks
of ``hotdesk doctor``. Switch-neutral; the protocol parts are in hotdesk_agi/ (AMI,
FastAGI) and esl_handlers/ (Event Socket)."""
