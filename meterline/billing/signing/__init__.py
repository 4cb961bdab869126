"""Request signatures of the providers' billing APIs, each as its provider documents it, in
pure functions a client signs with and a test double verifies with."""
