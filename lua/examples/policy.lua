-- policy.lua: a realistic filtering policy for a mail gateway.
--
--   accept: forward-confirmed reverse DNS (PTR, then A/AAAA of that name must give the
--           client's IP back) and DNS blocklist lookups of the client IP, all in flight at once
--   rcpt:   only the domains in SMTPE_DOMAINS (if set) are relayed
--   dot:    clamd and spamd scan the message in parallel; the URIs of the message are looked
--           up in a domain blocklist; verdict headers are added; viruses and high spam scores
--           are refused; everything else goes on to the smart host (smtp-smart-host)
--   scanners down: a message clamd or spamd could not judge (down, timed out, in error)
--           gets 451: the client keeps it and tries again, nothing is forwarded unscanned and
--           nothing is lost. With SMTPE_UNSCANNED=forward it goes on instead, with
--           "clamd=unavailable" / "spamd=unavailable" in its verdict header.
--
-- Configuration through the environment, so one file serves tests and production:
--   SMTPE_DNSBL   IP blocklists, comma separated     (default: none)
--   SMTPE_URIBL   domain blocklists for URIs          (default: none)
--   SMTPE_DOMAINS accepted recipient domains          (default: any)
--   SMTPE_CLAMD   clamd host list (host:port or /socket; default 127.0.0.1:3310; "none": no
--                 virus scan, the verdict header says clamd=off)
--   SMTPE_SPAMD   spamd host list (default 127.0.0.1:783; "none": no spam scan, spamd=off)
--   SMTPE_SPAM_REJECT  spamd score at which mail is refused (default 15)
--   SMTPE_UNSCANNED    "tempfail" (default) or "forward": mail a scanner did not judge
--   SMTPE_TRUST_LAN    "yes" (default): clients on loopback and private addresses skip the
--                      DNS checks; "no": they are checked like any other

local function list(name, default)
	local value, items = os.getenv(name) or default or "", {}
	if value == "none" then
		return items
	end
	for item in value:gmatch("[^,%s]+") do
		items[#items + 1] = item
	end
	return items
end

local ip_lists = list("SMTPE_DNSBL")
local uri_lists = list("SMTPE_URIBL")
local domains = {}
for _, domain in ipairs(list("SMTPE_DOMAINS")) do
	domains[domain:lower()] = true
end
local clamd_hosts = list("SMTPE_CLAMD", "127.0.0.1:3310")
local spamd_hosts = list("SMTPE_SPAMD", "127.0.0.1:783")
local spam_reject = tonumber(os.getenv("SMTPE_SPAM_REJECT") or "15")
local tempfail_unscanned = os.getenv("SMTPE_UNSCANNED") ~= "forward"
local trust_lan = os.getenv("SMTPE_TRUST_LAN") ~= "no"

-- The first A/AAAA/PTR value of an answer, or nil.
local function values(answers, key)
	local found, query = {}, answers[key]
	if query and query.answer then
		for _, record in ipairs(query.answer) do
			if record.value then
				found[#found + 1] = record.value
			end
		end
	end
	return found
end

-- clamd's verdict without the file name its reply starts with: "OK", "Eicar-Test FOUND"
-- (the spool path is nobody's business outside this host); "unavailable" without one.
local function clamd_verdict(clamd)
	if #clamd_hosts == 0 then
		return "off"
	end
	if not clamd or clamd.error or not clamd.reply then
		return "unavailable"
	end
	return (clamd.reply:gsub("^.*: ", ""):gsub("%s+$", ""))
end

function hook.accept(ip, host)
	client.verdicts = {}
	if trust_lan and net.is_ip_reserved(ip, net.is_ip.LOCAL + net.is_ip.LAN) then
		client.verdicts[#client.verdicts + 1] = "local"
		return
	end
	dns.open()
	dns.query(dns.class.IN, dns.type.PTR, ip)
	local reversed = net.reverse_ip(ip, 0)
	for _, zone in ipairs(ip_lists) do
		dns.query(dns.class.IN, dns.type.A, reversed .. "." .. zone)
	end
	local answers = dns.wait(1)

	for _, zone in ipairs(ip_lists) do
		local listed = values(answers, "IN,A," .. reversed .. "." .. zone .. ".")
		if #listed > 0 then
			syslog.info("dnsbl: " .. ip .. " listed in " .. zone .. " (" .. listed[1] .. ")")
			return true, "554 5.7.1 " .. ip .. " is listed in " .. zone
		end
	end

	-- Forward confirmation of the first PTR name.
	local names = values(answers, "IN,PTR," .. net.reverse_ip(ip, 1))
	client.fcrdns = "none"
	if #names > 0 then
		local name = names[1]:lower()
		dns.reset()
		dns.query(dns.class.IN, ip:find(":") and dns.type.AAAA or dns.type.A, name)
		local confirm = dns.wait(1)
		client.fcrdns = "fail"
		for _, address in ipairs(values(confirm, (ip:find(":") and "IN,AAAA," or "IN,A,") .. name)) do
			if address == ip then
				client.fcrdns = "pass"
			end
		end
	end
	client.verdicts[#client.verdicts + 1] = "fcrdns=" .. client.fcrdns
end

function hook.rcpt(recipient, domain)
	if next(domains) ~= nil and not domains[domain] then
		return "550 5.7.1 relaying to <" .. recipient .. "> denied"
	end
end

-- URI hosts of the message looked up in the domain blocklists, all at once.
local function listed_uri()
	if #uri_lists == 0 or #uri.found == 0 then
		return nil
	end
	dns.open()
	local asked = {}
	for _, key in ipairs(uri.found) do
		local host = uri.found[key].host
		if host and not asked[host] and not net.find_ip(host) then
			asked[host] = true
			for _, zone in ipairs(uri_lists) do
				dns.query(dns.class.IN, dns.type.A, host:lower() .. "." .. zone)
			end
		end
	end
	local answers = dns.wait(1)
	for host in pairs(asked) do
		for _, zone in ipairs(uri_lists) do
			if #values(answers, "IN,A," .. host:lower() .. "." .. zone .. ".") > 0 then
				return host .. " (" .. zone .. ")"
			end
		end
	end
	return nil
end

-- clamd and spamd (those configured) scan the message in parallel: {clamd=..., spamd=...}.
local function scan(path)
	if #clamd_hosts == 0 and #spamd_hosts == 0 then
		return {}
	end
	if #clamd_hosts > 0 then
		service.clamd(path, clamd_hosts, 30)
	end
	if #spamd_hosts > 0 then
		service.spamd(path, spamd_hosts, "CHECK", nil, 30)
	end
	return service.wait(1) or {}
end

function hook.dot(path)
	local scans = scan(path)
	local clamd, spamd = scans.clamd, scans.spamd
	local spam_checked = #spamd_hosts > 0

	if clamd and clamd.is_infected then
		return "550 5.7.1 message " .. client.id_trans .. " contains a virus: " .. clamd_verdict(clamd)
	end
	if tempfail_unscanned and clamd_verdict(clamd) == "unavailable" then
		return "451 4.7.1 message " .. client.id_trans .. " not scanned for viruses, try again later"
	end
	local score = spamd and spamd.reply and tonumber(spamd.reply:match("Spam: %a+ ; (%-?[%d.]+)")) or nil
	if tempfail_unscanned and spam_checked and not score then
		return "451 4.7.1 message " .. client.id_trans .. " not scanned for spam, try again later"
	end
	if score and score >= spam_reject then
		return "550 5.7.1 message " .. client.id_trans .. " refused as spam (score " .. score .. ")"
	end
	local bad_uri = listed_uri()
	if bad_uri then
		return "550 5.7.1 message " .. client.id_trans .. " links to a listed site: " .. bad_uri
	end

	header.insert("Received: from " .. client.host .. " [" .. client.address .. "]\r\n\tby "
		.. smtpe.host .. " (smtpe) id " .. client.id_trans .. ";\r\n\t"
		.. os.date("!%a, %d %b %Y %H:%M:%S +0000"), 1)
	header.modify("X-smtpe-Verdict", 1, table.concat(client.verdicts, " ")
		.. " clamd=" .. clamd_verdict(clamd)
		.. " spamd=" .. (score and tostring(score) or spam_checked and "unavailable" or "off")
		.. " parts=" .. #mime.parts .. " uris=" .. #uri.found)
	if spamd and spamd.is_spam then
		header.modify("X-Spam-Flag", 1, "YES")
	end
	-- nothing returned: the message goes on to the smart host
end
