-- The benchmark's "trivial hooks" policy (tests/perf/run, workloads a, b, b-pipe, c, d):
-- the hooks of every SMTP step are defined, so each costs a real Lua call, but decide
-- nothing; accepted mail goes on to the smart host (smtp-smart-host, an smtp-sink).

function hook.accept(ip, host) end

function hook.helo(name) end

function hook.ehlo(name) end

function hook.mail(sender, domain) end

function hook.rcpt(recipient, domain) end

function hook.data() end

function hook.dot(path) end

function hook.close(code) end
