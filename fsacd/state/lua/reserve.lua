-- reserve.lua: the atomic match of a queue's head call with free agents in a given order
-- (the matcher's passes use match.lua; this serves an explicit order: the CLI and tests).
--
-- KEYS[1]  events stream
-- KEYS[2]  queue:<q>:waiting   zset of waiting calls
-- KEYS[3]  call:<call_id>      hash of the head call
-- KEYS[4]  queue:<q>:members   zset agent id -> position
-- KEYS[5]  queue:<q>           hash; rr_last (position of the agent offered last) is set;
--                              nothing is offered while its field paused is "1"
-- ARGV[1]  key prefix (agent and call keys are built from it)
-- ARGV[2]  now
-- ARGV[3]  queue name
-- ARGV[4]  call id: must still be the head of KEYS[2] and in state `waiting`
-- ARGV[5]  offer id (new, unique)
-- ARGV[6]  want: how many agents to take (0 = every free candidate: ring-all)
-- ARGV[7…] candidate agent ids in preference order
-- Returns nil when nothing changed (the call is no longer the head, or no candidate is free
-- any more), else {offer_id, call_id, owner, n, agent_id × n}.
-- A head whose hash is not a waiting call of this queue cannot be served: it is dropped
-- from the zset (the queue is woken so matching moves on) and nil is returned.

local queue, call_id, want = ARGV[3], ARGV[4], tonumber(ARGV[6])
if redis.call('HGET', KEYS[5], 'paused') == '1' then
  return false
end
local calls = redis.call('ZRANGE', KEYS[2], 0, 0)
if calls[1] ~= call_id then
  return false
end

local cands, seen = {}, {}
for i = 7, #ARGV do
  cands[#cands + 1] = ARGV[i]
end
local next_i = 1
-- the next free candidates (want of them; all when want is 0), or an empty list
local function take()
  local taken = {}
  while next_i <= #cands do
    local id = cands[next_i]
    next_i = next_i + 1
    if not seen[id] then
      seen[id] = true
      if agent_free(id, KEYS[4]) then
        taken[#taken + 1] = id
        if want > 0 and #taken >= want then
          break
        end
      end
    end
  end
  return taken
end

return offer_calls(queue, calls, {ARGV[5]}, want, take, KEYS[2], KEYS[4], KEYS[5], sync_free,
                   true)
