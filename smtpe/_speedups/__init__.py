"""The compiled parts of smtpe: the content toolkit (line reader, message scanner, text.find,
iXhash), the event loop and the per-message I/O objects (client socket transport, outbound
stream, their recv/send in sockio.pxd), the reading of command lines and reply codes
(smtpsyntax, published by smtpe.protocol) and the smart-host client (smtpclient). All but
the client are leaves: they depend on nothing else of smtpe (the I/O objects know the loop
and their owner only by the few methods they call); the client uses netclient, hostlist and
smtpsyntax's reply codes.
Built by setup.py; `python setup.py build_ext --inplace` for a checkout."""
