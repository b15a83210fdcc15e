-- callback.lua: a waiting call turned into a callback (virtual hold, fsacd/callback.py).
-- The caller hung up; the call keeps its score, so it keeps its place in the queue.
--
-- KEYS[1]  events stream
-- KEYS[2]  call:<call_id>
-- ARGV[1]  key prefix (agent keys and queue:<q>:waiting of the call's queue are built from it)
-- ARGV[2]  now
-- ARGV[3]  op: 'register' | 'schedule' | 'requeue'
-- ARGV[4]  call id
-- ARGV[5]  register: number to call back (E.164); schedule: offer id ('' = not offered)
-- ARGV[6]  register: owner (controller id); schedule: due time (back into `waiting` then)
-- ARGV[7]  register: '1' if the number may appear in events (the call is not hidden);
--          schedule: outcome of the try
-- ARGV[8]  schedule: '1' to count the try (callback_tries + 1)
-- ARGV[9]  schedule: the agent who answered ('' if none: its no-answer streak is cleared)
--
-- op 'register': the caller confirmed the number and hangs up. The call must be waiting or
--   offering (an offer still on its way to the caller's greenlet is withdrawn: its agents are
--   released without penalty, the call is back in `waiting` with its score). Sets
--   callback=1, callback_number, callback_tries=0, callback_state=waiting, callback_at, owner.
--   Event callback-requested. Returns {1, position} or {0, state} (state '' if unknown).
-- op 'schedule': a try failed (or could not be made). The offer's agents are released
--   without penalty; the call leaves `waiting` (its state stays `waiting`,
--   callback_state=scheduled, callback_due=due) until 'requeue'. Event callback-retry.
--   Returns {1, tries} or {0, state}.
-- op 'requeue': a scheduled callback whose due time came goes back into `waiting` with its
--   score (callback_state=waiting). Event call-requeued (reason callback-retry).
--   Returns {1, ''} or {0, state}.

local op, call_id = ARGV[3], ARGV[4]
local c = redis.call('HMGET', KEYS[2], 'state', 'queue', 'score', 'offer', 'agents',
                     'callback_state', 'callback_tries')
local state = c[1] or ''
local queue = c[2] or ''
if state == '' or state == 'ended' or queue == '' then
  return {0, state}
end

if op == 'register' then
  local number, owner, shown = ARGV[5], ARGV[6], ARGV[7]
  if state == 'offering' then
    for _, id in ipairs(split(c[5])) do
      release_agent(id, call_id, c[4], 'cancel', nil, queue, 'callback')
    end
    redis.call('HSET', KEYS[2], 'state', 'waiting', 'offer', '', 'agents', '',
               'state_since', NOW_S)
    emit('call-requeued', {'call', call_id, 'queue', queue, 'offer', c[4] or '',
                           'reason', 'callback'})
    state = 'waiting'
  end
  if state ~= 'waiting' then
    return {0, state}
  end
  redis.call('ZADD', waiting_key(queue), c[3], call_id)
  redis.call('HSET', KEYS[2], 'callback', '1', 'callback_number', number, 'callback_tries', '0',
             'callback_state', 'waiting', 'callback_at', NOW_S, 'callback_due', '',
             'callback_last', '', 'owner', owner)
  local rank = redis.call('ZRANK', waiting_key(queue), call_id)
  local position = ''
  if rank then
    position = tostring(rank + 1)
  end
  local shown_number = ''
  if shown == '1' then
    shown_number = number
  end
  emit('callback-requested', {'call', call_id, 'queue', queue, 'number', shown_number,
                              'position', position})
  wake(queue)
  return {1, position}
end

if op == 'schedule' then
  local offer_id, due, outcome, count, answered = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  if offer_id ~= '' then
    if state ~= 'offering' or c[4] ~= offer_id then
      return {0, state}
    end
    for _, id in ipairs(split(c[5])) do
      release_agent(id, call_id, offer_id, 'none', nil, queue, 'callback-retry')
    end
  elseif state ~= 'waiting' then
    return {0, state}
  end
  if answered ~= '' then
    redis.call('HSET', agent_key(answered), 'no_answer_streak', 0)
  end
  redis.call('ZREM', waiting_key(queue), call_id)
  local tries = num(c[7])
  if count == '1' then
    tries = tries + 1
  end
  redis.call('HSET', KEYS[2], 'state', 'waiting', 'offer', '', 'agents', '', 'legs', '',
             'state_since', NOW_S, 'callback_state', 'scheduled', 'callback_due', due,
             'callback_last', outcome, 'callback_tries', string.format('%d', tries))
  emit('callback-retry', {'call', call_id, 'queue', queue, 'offer', offer_id,
                          'agent', answered, 'outcome', outcome,
                          'tries', string.format('%d', tries), 'due', due})
  return {1, string.format('%d', tries)}
end

if op == 'requeue' then
  if state ~= 'waiting' or c[6] ~= 'scheduled' then
    return {0, state}
  end
  redis.call('ZADD', waiting_key(queue), c[3], call_id)
  redis.call('HSET', KEYS[2], 'callback_state', 'waiting', 'callback_due', '',
             'state_since', NOW_S)
  emit('call-requeued', {'call', call_id, 'queue', queue, 'reason', 'callback-retry'})
  wake(queue)
  return {1, ''}
end

return redis.error_reply('unknown op ' .. op)
