"""Lua `net.*`: IP address and TLD helpers (smtpe.netaddr, smtpe.tld).

    net.is_ip_reserved(ip, bits=0)    -> boolean (false for a non-address)
    net.is_ip.NAME                    -> the bits (2011 numbering; see smtpe.netaddr.IS_IP)
    net.reverse_ip(ip, arpa)          -> string (arpa: number or boolean, nil = 0)
    net.contains_ip(cidr="::0/0", ip="::0") -> boolean
    net.has_valid_tld(s), net.has_valid_nth_tld(s, level=1)     -> boolean
    net.index_valid_tld(s), net.index_valid_nth_tld(s, level=1) -> 1-based offset, 0 if none
    net.is_ipv4_in_name(ip, name)     -> test number, 0 if none; nil when ip is no address
    net.find_ip(s)                    -> offset (0-based, as the original), span; nil if none
    net.format_ip(ip, compact=0)      -> string ("" for a non-address; IPv4 dotted)

Strings are taken whole (the original cut them at a NUL byte); flags and levels accept
numbers and booleans.
"""
from .. import netaddr, tld
from . import flag, integer, string_arg


def is_ip_reserved(ip=None, bits=None):
    return netaddr.is_ip_reserved(string_arg(ip, b""), integer(bits, 0))


def reverse_ip(ip=None, arpa=None):
    return netaddr.reverse_ip(string_arg(ip, b""), flag(arpa))


def contains_ip(cidr=None, ip=None):
    return netaddr.contains_ip(string_arg(cidr, b"::0/0"), string_arg(ip, b"::0"))


def has_valid_tld(domain=None):
    return tld.has_valid_tld(string_arg(domain))


def has_valid_nth_tld(domain=None, level=None):
    return tld.has_valid_nth_tld(string_arg(domain), integer(level, 1))


def index_valid_tld(domain=None):
    return tld.index_valid_tld(string_arg(domain))


def index_valid_nth_tld(domain=None, level=None):
    return tld.index_valid_nth_tld(string_arg(domain), integer(level, 1))


def is_ipv4_in_name(ip=None, name=None):
    return netaddr.ipv4_in_name(string_arg(ip, b""), string_arg(name, b""))


def find_ip(text=None):
    return netaddr.find_ip(string_arg(text, b""))  # a tuple: two Lua values


def format_ip(ip=None, compact=None):
    return netaddr.format_ip(string_arg(ip, b""), integer(compact, 0))


FUNCTIONS = [is_ip_reserved, reverse_ip, contains_ip, has_valid_tld, has_valid_nth_tld,
             index_valid_tld, index_valid_nth_tld, is_ipv4_in_name, find_ip, format_ip]


def install(api):
    table = api.namespace("net")
    table[b"is_ip"] = api.table(**netaddr.IS_IP)
    for function in FUNCTIONS:
        table[function.__name__.encode()] = function
