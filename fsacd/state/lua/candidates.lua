-- candidates.lua: what one matching pass of a queue needs, in one round trip.
--
-- KEYS[1]  events stream (unused; the convention of every script)
-- KEYS[2]  queue:<q>:waiting   zset of waiting calls
-- KEYS[3]  queue:<q>:members   zset agent id -> position
-- KEYS[4]  queue:<q>           hash; rr_last (round-robin pointer), paused ("1": no offers)
-- ARGV[1]  key prefix (agent keys are built from it)
-- ARGV[2]  now
-- Returns {head call id or false, waiting count, rr_last or '', paused ('1' or ''), then per
-- free member: id, position, last_call_end, login_at, answered, talk_time, last_offer_at}.
-- Free is the test of is_free_row (_lib.lua). Without a waiting call, or while the queue is
-- paused, no members are listed. Nothing is written: the snapshot only guides the strategy;
-- reserve.lua checks freedom again atomically.

local head = redis.call('ZRANGE', KEYS[2], 0, 0)
if not head[1] then
  return {false, 0, '', ''}
end
local q = redis.call('HMGET', KEYS[4], 'rr_last', 'paused')
local paused = q[2] == '1' and '1' or ''
local out = {head[1], redis.call('ZCARD', KEYS[2]), q[1] or '', paused}
if paused == '1' then
  return out
end
local members = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do
  local id = members[i]
  local a = redis.call('HMGET', agent_key(id), 'status', 'state', 'ready_at', 'last_call_end',
                       'login_at', 'answered', 'talk_time', 'last_offer_at')
  if is_free_row(a) then
    out[#out + 1] = id
    out[#out + 1] = members[i + 1]
    for j = 4, 8 do
      out[#out + 1] = a[j] or ''
    end
  end
end
return out
