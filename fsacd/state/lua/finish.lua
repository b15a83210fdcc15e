-- finish.lua: the call is over (finish_call, abandon). Releases everything it still holds:
-- the agent in-call goes to wrap-up (or idle when wrap_up is 0) with its counters updated,
-- agents still reserved/ringing for it go idle without penalty; the call leaves its waiting
-- zset and the `calls` set, becomes `ended` and expires. Idempotent.
--
-- KEYS[1]  events stream
-- KEYS[2]  call:<call_id>
-- KEYS[3]  calls set
-- KEYS[4]  ready zset (agent id -> ready_at)
-- ARGV[1]  key prefix (agent keys and queue:<q>:waiting of the call's queue are built from it)
-- ARGV[2]  now
-- ARGV[3]  call id
-- ARGV[4]  outcome (answered, abandoned, timeout, overflow, error, ...)
-- ARGV[5]  wrap_up seconds
-- ARGV[6]  TTL of the ended call hash, seconds
-- ARGV[7]  event type: 'call-ended' or 'call-abandoned'
-- Returns 1 if the call ended now, 0 if it was already ended or is unknown.

local call_id, outcome, wrap_up, ttl, etype = ARGV[3], ARGV[4], num(ARGV[5]), ARGV[6], ARGV[7]
local c = redis.call('HMGET', KEYS[2], 'state', 'queue', 'agent', 'agents', 'answered_at',
                     'entered_at')
if not c[1] then
  redis.call('SREM', KEYS[3], call_id)
  return 0
end
if c[1] == 'ended' then
  return 0
end
local queue = c[2] or ''
local position = ''
if c[1] == 'waiting' and queue ~= '' then
  local rank = redis.call('ZRANK', waiting_key(queue), call_id)
  if rank then
    position = tostring(rank + 1)
  end
end

local holders, seen = {}, {}
for _, id in ipairs(split(c[3] or '')) do
  holders[#holders + 1] = id
  seen[id] = true
end
for _, id in ipairs(split(c[4] or '')) do
  if not seen[id] then
    holders[#holders + 1] = id
  end
end

local talk = ''
-- figures of the queue, added in one go at the end
local q_ints, q_floats, q_maxes = {'outcome:' .. outcome, 1}, {}, {}
for _, id in ipairs(holders) do
  local key = agent_key(id)
  local a = redis.call('HMGET', key, 'state', 'call', 'talk_time')
  if a[1] == 'in-call' and a[2] == call_id then
    local t = 0
    if c[5] then
      t = math.max(0, NOW - num(c[5]))
    end
    talk = fmt_time(t)
    stats_put('agent', id, NOW, {'handled', 1}, {'talk_time', t, 'wrap_time', wrap_up})
    q_ints[#q_ints + 1], q_ints[#q_ints + 2] = 'handled', 1
    q_floats = {'talk_time', t, 'wrap_time', wrap_up}
    redis.call('HINCRBY', key, 'answered', 1)
    redis.call('HSET', key, 'talk_time', fmt_time(num(a[3]) + t), 'last_call_end', NOW_S,
               'call', '', 'offer', '', 'owner', '', 'state_since', NOW_S)
    if wrap_up > 0 then
      local ready = fmt_time(NOW + wrap_up)
      redis.call('HSET', key, 'state', 'wrap-up', 'ready_at', ready)
      redis.call('ZADD', KEYS[4], ready, id)
      emit('agent-state', {'agent', id, 'state', 'wrap-up', 'call', call_id, 'queue', queue,
                           'ready_at', ready})
    else
      redis.call('HSET', key, 'state', 'idle')
      emit('agent-state', {'agent', id, 'state', 'idle', 'call', call_id, 'queue', queue,
                           'reason', 'call-ended'})
      wake_agent(id)
    end
    agent_mark(id)
  else
    release_agent(id, call_id, nil, 'none', nil, queue, 'call-ended')
  end
end

if queue ~= '' then
  redis.call('ZREM', waiting_key(queue), call_id)
end
redis.call('HSET', KEYS[2], 'state', 'ended', 'outcome', outcome, 'ended_at', NOW_S,
           'state_since', NOW_S)
redis.call('SREM', KEYS[3], call_id)
redis.call('EXPIRE', KEYS[2], ttl)
local waited = ''
if c[6] then
  local until_ = NOW
  if c[5] then
    until_ = num(c[5])
  end
  waited = fmt_time(math.max(0, until_ - num(c[6])))
end
-- figures: how the call ended; an abandon (the caller hung up unanswered: event
-- call-abandoned or outcome abandoned) with its wait (within service level or not)
if queue ~= '' then
  if (etype == 'call-abandoned' or outcome == 'abandoned') and not c[5] then
    local wait = math.max(0, NOW - num(c[6] or NOW_S))
    local sl = tonumber(redis.call('HGET', PREFIX .. 'queue:' .. queue, 'service_level_seconds'))
    local in_sl = 0
    if wait <= (sl or 20) then
      in_sl = 1
    end
    for _, v in ipairs({'abandoned', 1, 'abandoned_in_sl', in_sl}) do
      q_ints[#q_ints + 1] = v
    end
    q_floats = {'wait_abandoned', wait}
    q_maxes = {'longest_wait', wait}
    stats_observe(queue, 'wait', WAIT_BUCKETS, wait)
  end
  stats_put('queue', queue, NOW, q_ints, q_floats, q_maxes)
  redis.call('ZREM', inqueue_key(queue), call_id)
  local talking = 0
  if c[1] == 'bridged' then
    talking = -1
  end
  queue_live(queue, talking)
end
emit(etype, {'call', call_id, 'queue', queue, 'outcome', outcome, 'agent', c[3] or '',
             'waited', waited, 'talk', talk, 'position', position})
return 1
