

# The voicemail PINs the fake switches hold (voicemail.conf / the directory's
# vm-password) unless a test says otherwise: the same PINs the tests' users get in
# hotdesk, so a call behaves the same whichever PIN source decides.
SWITCH_VOICEMAIL = {"101": "1234", "102": "4321", "103": "1111"}
