-- maildir.lua: a first policy. Accepts mail for any recipient and files each message into a
-- Maildir per recipient (<root>/<recipient>/new/...), so a new user sees mail arrive without
-- any other server. Start it with `make run`; send mail to 127.0.0.1:2525.
--
-- Set SMTPE_MAILDIR to choose the root (default ./var/mail, relative to where smtpe started).

local root = os.getenv("SMTPE_MAILDIR") or "var/mail"
if root:sub(1, 1) ~= "/" then
	root = (os.getenv("PWD") or ".") .. "/" .. root
end
local deliveries = 0

function hook.init()
	util.mkpath(root)
	syslog.info("maildir.lua: delivering into " .. root)
end

function hook.accept(ip, host)
	client.received = 0
	syslog.info("connection from " .. host .. " [" .. ip .. "]")
end

function hook.rcpt(recipient, domain)
	-- A mailbox name must be a safe file name: no path separators, no leading dot.
	if recipient:find("[/\\]") or recipient:sub(1, 1) == "." then
		return "550 5.1.3 mailbox name not allowed"
	end
end

-- Copy the spool file into <root>/<rcpt>/new. Maildir: write into tmp/, then rename to new/.
local function deliver(path, recipient)
	local box = root .. "/" .. recipient:lower()
	for _, sub in ipairs({ "tmp", "new", "cur" }) do
		if not util.mkpath(box .. "/" .. sub) then
			return false
		end
	end
	deliveries = deliveries + 1
	local name = string.format("%d.%s_%d.%s", os.time(), client.id_trans, deliveries, smtpe.host)
	local source = io.open(path, "rb")
	if source == nil then
		return false
	end
	local target = io.open(box .. "/tmp/" .. name, "wb")
	if target == nil then
		source:close()
		return false
	end
	target:write("Return-Path: <", client.sender or "", ">\r\n")
	while true do
		local block = source:read(65536)
		if block == nil then
			break
		end
		target:write(block)
	end
	source:close()
	target:close()
	return os.rename(box .. "/tmp/" .. name, box .. "/new/" .. name)
end

function hook.mail(sender, domain)
	client.sender = sender
end

function hook.eoh()
	header.insert("Received: from " .. client.host .. " [" .. client.address .. "] by "
		.. smtpe.host .. " (smtpe) id " .. client.id_trans .. "; " .. os.date("!%a, %d %b %Y %H:%M:%S +0000"), 1)
end

function hook.forward(path, sender, recipients)
	for _, recipient in ipairs(recipients) do
		if not deliver(path, recipient) then
			return "451 4.3.0 cannot write the mailbox of " .. recipient .. ", try again later"
		end
	end
	return "250 2.0.0 delivered to " .. #recipients .. " mailbox(es) " .. client.id_trans
end
