-- release_offer.lua: an offer failed (offer_failed) or is withdrawn (cancel_offer): each agent
-- still reserved/ringing for it is released with the outcome of its leg, and the call goes
-- back to its queue's waiting zset with its old score (same place as before).
--
-- KEYS[1]  events stream
-- KEYS[2]  call:<call_id>
-- ARGV[1]  key prefix (agent keys and queue:<q>:waiting of the call's queue are built from it)
-- ARGV[2]  now
-- ARGV[3]  call id
-- ARGV[4]  offer id
-- ARGV[5]  reason: 'failed' | 'cancel' (recorded in call-requeued / agent-state events)
-- ARGV[6]  max_no_answer (0 = never put on break)
-- ARGV[7]  no_answer_delay seconds
-- ARGV[8]  busy_delay seconds
-- ARGV[9]  reject_delay seconds
-- ARGV[10…] pairs: agent id, outcome ('no-answer', 'unreachable', 'busy', 'reject', 'error'
--          are penalised; 'none', 'lose-race', 'cancel', 'answered' are not)
-- Returns {requeued, released}: requeued = 1 if the call went back to waiting (it was still
-- offering this offer), released = number of agents released.

local call_id, offer_id, reason = ARGV[3], ARGV[4], ARGV[5]
local rules = {num(ARGV[6]), num(ARGV[7]), num(ARGV[8]), num(ARGV[9])}
local c = redis.call('HMGET', KEYS[2], 'state', 'offer', 'queue', 'score')
local queue = c[3] or ''
local released = 0
for i = 10, #ARGV, 2 do
  if release_agent(ARGV[i], call_id, offer_id, ARGV[i + 1], rules, queue, reason) then
    released = released + 1
  end
end
if c[1] ~= 'offering' or c[2] ~= offer_id then
  return {0, released}
end
-- agents of the offer that the caller did not name: released without penalty
local agents = redis.call('HGET', KEYS[2], 'agents')
for _, id in ipairs(split(agents)) do
  if release_agent(id, call_id, offer_id, 'none', nil, queue, reason) then
    released = released + 1
  end
end
redis.call('ZADD', waiting_key(queue), c[4], call_id)
redis.call('HSET', KEYS[2], 'state', 'waiting', 'offer', '', 'agents', '', 'state_since', NOW_S)
emit('call-requeued', {'call', call_id, 'queue', queue, 'offer', offer_id, 'reason', reason})
wake(queue)
return {1, released}
