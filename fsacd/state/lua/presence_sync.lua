-- presence_sync.lua: after a presence watcher (re)connected to its FreeSWITCH, the agents'
-- outside channels *on that FreeSWITCH* are exactly the ones given; the channels other
-- FreeSWITCH servers reported stay. Members of ext:<agent> are "<core-uuid>/<channel uuid>"
-- (Core-UUID of the switch that has the channel); plain uuids (written before channels were
-- kept per switch) count as this switch's.
--
-- KEYS[1]  events stream (unused; the convention of every script)
-- KEYS[2]  ext_busy (set of agents with any outside channel)
-- ARGV[1]  key prefix (ext:<agent> keys are built from it, as fsacd/state/keys.py does)
-- ARGV[2]  now (unused)
-- ARGV[3]  n: how many Core-UUIDs follow (this switch's, and earlier ones of it)
-- ARGV[4..3+n]  Core-UUIDs whose channels are replaced
-- ARGV[4+n..]  pairs: agent id, member ("<core>/<uuid>")
-- Returns the number of agents with an outside channel afterwards.

local function ext_key(id)
  return PREFIX .. 'ext:' .. id
end

local n = tonumber(ARGV[3])
local prefixes = {}
for i = 1, n do
  prefixes[#prefixes + 1] = ARGV[3 + i] .. '/'
end
local function replaced(member)
  if not string.find(member, '/', 1, true) then
    return true
  end
  for _, p in ipairs(prefixes) do
    if string.sub(member, 1, #p) == p then
      return true
    end
  end
  return false
end

for _, agent in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = ext_key(agent)
  for _, m in ipairs(redis.call('SMEMBERS', key)) do
    if replaced(m) then
      redis.call('SREM', key, m)
    end
  end
  if redis.call('SCARD', key) == 0 then
    redis.call('SREM', KEYS[2], agent)
  end
end
for i = 4 + n, #ARGV, 2 do
  redis.call('SADD', ext_key(ARGV[i]), ARGV[i + 1])
  redis.call('SADD', KEYS[2], ARGV[i])
end
return redis.call('SCARD', KEYS[2])
