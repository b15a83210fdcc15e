-- arrive.lua: a call arrives at a controller: it enters its queue (enqueue.lua) and, in the
-- same round trip, the queue gets a matching pass (match.lua), so a caller who finds a free
-- agent leaves with its offer. A call another controller still holds (offering, bridged:
-- that controller died, or the switch moved the caller here) is left alone: the caller's
-- controller ends the old stay first, then arrives again.
--
-- KEYS[1]  events stream
-- KEYS[2]  call:<call_id>
-- KEYS[3]  calls set
-- KEYS[4]  seq counter
-- KEYS[5]  queue:<q>:waiting
-- KEYS[6]  queue:<q>:members
-- KEYS[7]  queue:<q>           hash (paused, index_strategy, rr_last)
-- KEYS[8]  queue:<q>:free      the free index
-- KEYS[9…] optional: sets of agents not to offer now (presence: ext_busy, unregistered, dnd)
-- ARGV[1]  key prefix
-- ARGV[2]  now
-- ARGV[3]  call id
-- ARGV[4]  queue name
-- ARGV[5]  priority (already clamped to 0..PRIORITY_MAX)
-- ARGV[6]  PRIORITY_MAX
-- ARGV[7]  owner (controller id)
-- ARGV[8]  JSON object of further string fields for the call hash (number, name, ...)
-- ARGV[9]  '1': enter parked (enqueue.lua's ARGV[9]; no pass then), else ''
-- ARGV[10] strategy of the matching pass; '' = no pass (enqueue only, the queue is woken)
-- ARGV[11] offer ids (new, unique), comma-separated: one per call the pass serves at most
-- ARGV[12] want: agents per call (0 = ring-all)
-- ARGV[13] random strategy only: fractions in [0, 1), comma-separated
-- ARGV[14…] agents not to offer now (busy elsewhere: presence)
-- Returns {'moved', owner} when another controller holds the call (nothing changed), else
-- {'ok', call hash as a flat list, offers as match.lua returns them (or an empty list)}.
-- With a pass the queue is not woken: the pass served whatever the new call made possible.
-- Sent again after a lost reply, a call already offering one of ARGV[11]'s offers returns
-- that offer (from the call hash) instead of an error.

local call_id, owner = ARGV[3], ARGV[7]
local parked = ARGV[9] == '1'
local strategy = ARGV[10]
if parked then
  strategy = ''
end
local offer_ids = split(ARGV[11])
local c = redis.call('HMGET', KEYS[2], 'state', 'owner', 'offer', 'agents', 'queue')
if c[1] == 'offering' or c[1] == 'bridged' then
  if (c[2] or '') ~= owner then
    return {'moved', c[2] or ''}
  end
  for _, id in ipairs(offer_ids) do
    if c[1] == 'offering' and c[3] == id then
      local agents = split(c[4])
      local offer = {id, call_id, owner, #agents}
      for _, a in ipairs(agents) do
        offer[#offer + 1] = a
      end
      return {'ok', redis.call('HGETALL', KEYS[2]), offer}
    end
  end
end
local res = enqueue_call(KEYS[2], KEYS[3], KEYS[4], KEYS[5], call_id, ARGV[4], num(ARGV[5]),
                         num(ARGV[6]), owner, cjson.decode(ARGV[8]), parked, strategy == '')
if res.err then
  return res
end
local offers = {}
if strategy ~= '' then
  local excluded = {}
  for i = 14, #ARGV do
    excluded[ARGV[i]] = true
  end
  local busy_sets = {}
  for i = 9, #KEYS do
    busy_sets[#busy_sets + 1] = KEYS[i]
  end
  offers = match_pass(ARGV[4], strategy, offer_ids, tonumber(ARGV[12]), split(ARGV[13]),
                      excluded, KEYS[5], KEYS[6], KEYS[7], KEYS[8], busy_sets) or {}
end
return {'ok', redis.call('HGETALL', KEYS[2]), offers}
