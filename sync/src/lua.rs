//! Lua shared by the server-side scripts ([`crate::script::WRITE_LUA`],
//! [`crate::fleetconf::CONFIG_LUA`], [`crate::fleetconf::UNCONFIG_LUA`]).
//! A script sent to Redis is one self-contained text, so the helpers are
//! spliced into each with `concat!`, written once here.

/// The helpers every script checks its untrusted arguments with: `fmt`
/// (an integer as text), `uint` (a decimal of at most 15 digits, no
/// leading zero, or nil), `epochok` (an incarnation: 1 to 19 digits, no
/// leading zero) and `encode` (a name as it appears in keys: itself when
/// short and plain, else `h:` and its SHA-1, as `crate::keys` encodes it).
macro_rules! lua_prelude {
    () => {
        r#"local function fmt(n) return string.format('%d', n) end
local function uint(s)
  if type(s) ~= 'string' or #s < 1 or #s > 15 then return nil end
  if s ~= '0' and not string.find(s, '^[1-9]%d*$') then return nil end
  return tonumber(s)
end
local function epochok(s)
  return type(s) == 'string' and #s <= 19 and string.find(s, '^[1-9]%d*$') ~= nil
end
local function encode(n)
  if #n >= 1 and #n <= 128 and string.find(n, '^[%w%._%-]+$') then return n end
  return 'h:' .. redis.sha1hex(n)
end
"#
    };
}
