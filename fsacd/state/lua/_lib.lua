-- _lib.lua: helpers that fsacd/scripts.py puts in front of every script (not a script itself).
--
-- Conventions shared by all scripts:
--   KEYS[1]  the events stream (<prefix>events)
--   ARGV[1]  the key prefix (e.g. "fsacd:"): agent, queue and call keys that a script only
--            learns while it runs are built from it (on a Redis Cluster the prefix carries a
--            hash tag, {fsacd}:, so they share the slot of KEYS[1]: fsacd/state/cluster.py)
--   ARGV[2]  now: seconds since the epoch, a string with millisecond precision
-- Key names built here must match fsacd/keys.py (tests/test_store.py checks it):
--   <prefix>agent:<id>  <prefix>queue:<name>:members  <prefix>queue:<name>:waiting
--   <prefix>call:<id>   <prefix>contact:<id>   <prefix>ready   <prefix>calls   channel <prefix>wake
--   <prefix>queue:<name>:inqueue   <prefix>stats:queue:<name>:live
--   <prefix>stats:<queue|agent>:<id>:total / :day:<YYYY-MM-DD> / :slot:<YYYY-MM-DD>T<HH:MM>
-- Numbers written to Redis are formatted here (never Lua's tostring, which keeps only 14
-- significant digits): times with 3 decimals, scores as integers.

local PREFIX = ARGV[1]
local NOW_S = ARGV[2]
local NOW = tonumber(NOW_S)
local EVENTS = KEYS[1]
local EVENTS_MAXLEN = 100000
local READY = PREFIX .. 'ready'
local CALLS = PREFIX .. 'calls'
local WAKE = PREFIX .. 'wake'

local function fmt_time(x)
  return string.format('%.3f', x)
end

local function num(x)
  return tonumber(x) or 0
end

local function agent_key(id)
  return PREFIX .. 'agent:' .. id
end

local function members_key(q)
  return PREFIX .. 'queue:' .. q .. ':members'
end

local function free_key(q)
  return PREFIX .. 'queue:' .. q .. ':free'
end

local function queue_key(q)
  return PREFIX .. 'queue:' .. q
end

local function waiting_key(q)
  return PREFIX .. 'queue:' .. q .. ':waiting'
end

local function inqueue_key(q)
  return PREFIX .. 'queue:' .. q .. ':inqueue'
end

local function call_key(id)
  return PREFIX .. 'call:' .. id
end

local function contact_key(id)
  return PREFIX .. 'contact:' .. id
end

local function split(s)
  local out = {}
  if not s or s == '' then
    return out
  end
  for part in string.gmatch(s, '[^,]+') do
    out[#out + 1] = part
  end
  return out
end

-- XADD an event; fields is a flat list {name, value, ...}; empty values are left out.
local function emit(etype, fields)
  local args = {'XADD', EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'type', etype, 'ts', NOW_S}
  for i = 1, #fields, 2 do
    local v = fields[i + 1]
    if v and v ~= '' then
      args[#args + 1] = fields[i]
      args[#args + 1] = v
    end
  end
  redis.call(unpack(args))
end

-- PUBLISH each queue at most once per script run.
local woken = {}
local woken_list = {}
local function wake(q)
  if q and q ~= '' and not woken[q] then
    woken[q] = true
    woken_list[#woken_list + 1] = q
    redis.call('PUBLISH', WAKE, q)
  end
end

-- The agent's queue names (from its `queues` JSON field), sorted.
local function agent_queues(id)
  local raw = redis.call('HGET', agent_key(id), 'queues')
  local out = {}
  if not raw or raw == '' then
    return out
  end
  local ok, t = pcall(cjson.decode, raw)
  if ok and type(t) == 'table' then
    for q, _ in pairs(t) do
      out[#out + 1] = q
    end
  end
  table.sort(out)
  return out
end

-- The free index (queue:<q>:free, a zset): a queue's free members scored for the queue's
-- strategy (the field index_strategy of queue:<q>, set by match.lua): most-idle by the
-- idle-since time (last call's end, else login; equal times are ordered by position, then
-- id, where it is read: match.lua), fewest-calls by calls answered and least-talk-time by
-- talk time (in ms) with the position folded into the score (count * 2^24 + position,
-- talk_ms * 2^21 + position: exact in a double), the others by position; equal scores go by
-- id (the zset's own order). Kept by sync_free wherever an agent may become free or stop
-- being free; fsacd/core/strategies.py is the reference of the orders.
local function free_score(strategy, a, pos)
  -- a = {status, state, ready_at, last_call_end, login_at, answered, talk_time}
  if strategy == 'most-idle' then
    if a[4] and a[4] ~= '' then
      return a[4]
    end
    if a[5] and a[5] ~= '' then
      return a[5]
    end
    return '0'
  elseif strategy == 'fewest-calls' then
    return string.format('%.0f', num(a[6]) * 16777216 + num(pos))
  elseif strategy == 'least-talk-time' then
    local ms = math.floor(num(a[7]) * 1000 + 0.5)
    return string.format('%.0f', ms * 2097152 + num(pos))
  end
  return pos
end

local AGENT_INDEX_FIELDS = {'status', 'state', 'ready_at', 'last_call_end', 'login_at',
                            'answered', 'talk_time'}

local function is_free_row(a)
  return a[1] == 'available' and (a[2] == 'idle' or a[2] == 'wrap-up') and num(a[3]) <= NOW
end

-- Put the agent in (or take it out of) the free index of one queue it is a member of.
local function sync_free_in(id, q, a)
  local pos = redis.call('ZSCORE', members_key(q), id)
  if pos and is_free_row(a) then
    local strategy = redis.call('HGET', queue_key(q), 'index_strategy') or ''
    redis.call('ZADD', free_key(q), free_score(strategy, a, pos), id)
  else
    redis.call('ZREM', free_key(q), id)
  end
end

-- Bring the free index of each of the agent's queues up to date; returns the agent's row
-- (AGENT_INDEX_FIELDS) and its queues.
local function sync_free(id)
  local a = redis.call('HMGET', agent_key(id), unpack(AGENT_INDEX_FIELDS))
  local queues = agent_queues(id)
  for _, q in ipairs(queues) do
    sync_free_in(id, q, a)
  end
  return a, queues
end

-- Wake the agent's queues if it is available and its ready_at has passed, after bringing
-- their free indexes up to date (scripts call this wherever an agent may have become free;
-- where it stops being free, sync_free).
local function wake_agent(id)
  local a, queues = sync_free(id)
  if a[1] == 'available' and num(a[3]) <= NOW then
    for _, q in ipairs(queues) do
      wake(q)
    end
  end
end

-- Free = available, idle (or wrap-up that is over), past ready_at, member of the queue.
local function agent_free(id, members)
  local a = redis.call('HMGET', agent_key(id), 'status', 'state', 'ready_at')
  return is_free_row(a) and redis.call('ZSCORE', members, id) ~= false
end

-- ---- figures (docs/redis.md "Figures"; read by fsacd/state/stats.py) ----------------------
-- Counters per queue and per agent in three buckets: the running total (never expires), the
-- UTC day and the 15-minute interval (UTC) a change happened in. Names must match
-- Keys.stats_* in fsacd/state/keys.py.
local STATS_SLOT = 900
local STATS_DAY_TTL = 400 * 86400
local STATS_SLOT_TTL = 35 * 86400
-- upper bounds (seconds) of the wait- and ring-time histograms, on the total bucket only
local WAIT_BUCKETS = {5, 10, 20, 30, 60, 120, 300, 600}
local RING_BUCKETS = {2, 5, 10, 15, 20, 30, 60}

-- 'YYYY-MM-DD', 'HH:MM' of epoch seconds t in UTC (days from civil, H. Hinnant).
local function utc_civil(t)
  local days = math.floor(t / 86400)
  local secs = t - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
                          - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp + 3
  if mp >= 10 then
    m = mp - 9
  end
  local y = yoe + era * 400
  if m <= 2 then
    y = y + 1
  end
  return string.format('%04d-%02d-%02d', y, m, d),
         string.format('%02d:%02d', math.floor(secs / 3600), math.floor((secs % 3600) / 60))
end

-- The total, day and interval keys of one queue or agent (kind 'queue' / 'agent') at time t.
local function stats_keys(kind, id, t)
  local base = PREFIX .. 'stats:' .. kind .. ':' .. id
  local day = utc_civil(t)
  local sday, hm = utc_civil(math.floor(t / STATS_SLOT) * STATS_SLOT)
  return {base .. ':total', base .. ':day:' .. day, base .. ':slot:' .. sday .. 'T' .. hm}
end

-- Add to counters at time t: ints and floats are flat lists {field, amount, ...}; maxes
-- {field, value, ...} keep the largest value seen.
local function stats_put(kind, id, t, ints, floats, maxes)
  if not id or id == '' then
    return
  end
  local keys = stats_keys(kind, id, t)
  for i, key in ipairs(keys) do
    for j = 1, #(ints or {}), 2 do
      redis.call('HINCRBY', key, ints[j], ints[j + 1])
    end
    for j = 1, #(floats or {}), 2 do
      if floats[j + 1] ~= 0 then
        redis.call('HINCRBYFLOAT', key, floats[j], fmt_time(floats[j + 1]))
      end
    end
    for j = 1, #(maxes or {}), 2 do
      if num(redis.call('HGET', key, maxes[j])) < maxes[j + 1] then
        redis.call('HSET', key, maxes[j], fmt_time(maxes[j + 1]))
      end
    end
    if i == 2 then
      redis.call('EXPIRE', key, STATS_DAY_TTL)
    elseif i == 3 then
      redis.call('EXPIRE', key, STATS_SLOT_TTL)
    end
  end
end

-- One observation of a histogram (name 'wait' or 'ring') on the queue's total bucket:
-- <name>_bucket:<bound> counts the values above the bound before it up to this one
-- (<name>_bucket:inf above the last), <name>_count, <name>_sum. Readers add them up into
-- Prometheus' cumulative buckets.
local function stats_observe(q, name, bounds, value)
  if not q or q == '' then
    return
  end
  local key = PREFIX .. 'stats:queue:' .. q .. ':total'
  local bucket = 'inf'
  for _, b in ipairs(bounds) do
    if value <= b then
      bucket = string.format('%d', b)
      break
    end
  end
  redis.call('HINCRBY', key, name .. '_bucket:' .. bucket, 1)
  redis.call('HINCRBY', key, name .. '_count', 1)
  redis.call('HINCRBYFLOAT', key, name .. '_sum', fmt_time(value))
end

-- Live gauges of a queue (hash stats:queue:<q>:live) from queue:<q>:inqueue (calls waiting
-- or being offered, score = entered_at): waiting, oldest (entered_at of the longest waiting
-- call, or empty), talking (bridged calls), updated_at.
local function queue_live(q, talking_delta)
  if not q or q == '' then
    return
  end
  local live = PREFIX .. 'stats:queue:' .. q .. ':live'
  local inq = inqueue_key(q)
  local head = redis.call('ZRANGE', inq, 0, 0, 'WITHSCORES')
  local oldest = ''
  if head[2] then
    oldest = fmt_time(num(head[2]))
  end
  redis.call('HSET', live, 'waiting', redis.call('ZCARD', inq), 'oldest', oldest,
             'updated_at', NOW_S)
  if talking_delta and talking_delta ~= 0 then
    local n = redis.call('HINCRBY', live, 'talking', talking_delta)
    if n < 0 then
      redis.call('HSET', live, 'talking', 0)
    end
  end
end

-- What an agent is doing, for time in state: its call state while it has a call (reserved
-- counts as the state before), else its status (idle = available and free).
local function agent_activity(status, state)
  if state == 'ringing' or state == 'in-call' or state == 'wrap-up' then
    return state
  end
  if status == 'logged-out' or status == 'on-break' then
    return status
  end
  return 'idle'
end

-- Time in state: after any change of an agent, the seconds since its last change are added
-- to time:<activity> of the agent's buckets (split at interval boundaries); fields tis_state
-- and tis_since on the agent hash hold the activity being timed. gone = the agent is removed.
local function agent_mark(id, gone)
  local key = agent_key(id)
  local a = redis.call('HMGET', key, 'status', 'state', 'tis_state', 'tis_since')
  local new = nil
  if not gone then
    if not a[1] then
      return
    end
    new = agent_activity(a[1], a[2])
    if new == a[3] then
      return
    end
  end
  if a[3] and a[3] ~= '' and a[4] then
    local t = math.max(num(a[4]), NOW - 2 * 86400)
    local n = 0
    while t < NOW and n < 200 do
      local stop = math.min(NOW, (math.floor(t / STATS_SLOT) + 1) * STATS_SLOT)
      stats_put('agent', id, t, nil, {'time:' .. a[3], stop - t})
      t = stop
      n = n + 1
    end
  end
  if not gone then
    redis.call('HSET', key, 'tis_state', new, 'tis_since', NOW_S)
  end
end

-- Release an agent still reserved/ringing for (call_id, offer_id), applying the outcome of
-- its leg. rules = {max_no_answer, no_answer_delay, busy_delay, reject_delay} or nil (no
-- penalty). Returns true if the agent was released.
local PENALISED = {['no-answer'] = true, ['unreachable'] = true, ['busy'] = true,
                   ['reject'] = true, ['error'] = true}
local function release_agent(id, call_id, offer_id, outcome, rules, queue, reason)
  local key = agent_key(id)
  local a = redis.call('HMGET', key, 'state', 'call', 'offer', 'status')
  if a[1] ~= 'reserved' and a[1] ~= 'ringing' then
    return false
  end
  if a[2] ~= call_id or (offer_id and a[3] ~= offer_id) then
    return false
  end
  local delay = 0
  local streak = nil
  if rules and PENALISED[outcome] then
    if outcome == 'no-answer' or outcome == 'unreachable' then
      redis.call('HINCRBY', key, 'missed', 1)
      streak = redis.call('HINCRBY', key, 'no_answer_streak', 1)
      delay = rules[2]
    elseif outcome == 'busy' then
      delay = rules[3]
    elseif outcome == 'reject' then
      delay = rules[4]
    else
      delay = rules[2]
    end
    emit('agent-missed', {'agent', id, 'call', call_id, 'queue', queue, 'offer', a[3],
                          'outcome', outcome, 'streak', streak and tostring(streak) or ''})
  end
  redis.call('HSET', key, 'state', 'idle', 'state_since', NOW_S, 'call', '', 'offer', '',
             'owner', '')
  if delay > 0 then
    local ready = fmt_time(NOW + delay)
    redis.call('HSET', key, 'ready_at', ready)
    redis.call('ZADD', READY, ready, id)
  end
  emit('agent-state', {'agent', id, 'state', 'idle', 'call', call_id, 'queue', queue,
                       'reason', reason})
  if streak and rules[1] > 0 and streak >= rules[1] and a[4] == 'available' then
    redis.call('HSET', key, 'status', 'on-break', 'break_reason', outcome)
    emit('agent-status', {'agent', id, 'status', 'on-break', 'old', a[4], 'reason', outcome})
  end
  if streak then
    stats_put('agent', id, NOW, {'missed', 1})
  end
  agent_mark(id)
  wake_agent(id)
  return true
end

-- Agents whose ready_at has come (the ready zset): wrap-up -> idle, the free index of their
-- queues brought up to date, their queues woken (free_due.lua; match.lua first, so the index
-- is exact at the moment it is read).
local function free_due_agents()
  local due = redis.call('ZRANGEBYSCORE', READY, '-inf', NOW_S)
  for _, id in ipairs(due) do
    redis.call('ZREM', READY, id)
    local key = agent_key(id)
    local a = redis.call('HMGET', key, 'state', 'ready_at')
    if a[1] then
      if num(a[2]) > NOW then
        redis.call('ZADD', READY, a[2], id)
      else
        if a[1] == 'wrap-up' then
          redis.call('HSET', key, 'state', 'idle', 'state_since', NOW_S)
          emit('agent-state', {'agent', id, 'state', 'idle', 'reason', 'wrap-up-over'})
          agent_mark(id)
        end
        wake_agent(id)
      end
    end
  end
end

-- Offer the calls ``calls`` (ids, in order) of ``queue``: each one still waiting in it takes
-- the agents ``take()`` returns (none: stop) and the next id of ``offer_ids``; the call leaves
-- ``waiting`` and is offering, its agents are reserved (``on_reserved(id)`` for each), and
-- ``rr_last`` of ``qhash`` becomes the position (in ``members``) of the last agent taken. A
-- listed call that is not a waiting call of the queue is dropped from ``waiting`` (the queue
-- woken); with ``strict`` that ends it all with nothing offered. ``want`` 0 (ring-all): one
-- call. Returns false when nothing was offered, else {offer_id, call_id, owner, n,
-- agent_id × n, ...} (reserve.lua, match.lua).
local function offer_calls(queue, calls, offer_ids, want, take, waiting, members, qhash,
                           on_reserved, strict)
  local out, last_taken, n_offers = {}, nil, 0
  for _, call_id in ipairs(calls) do
    local ckey = call_key(call_id)
    local c = redis.call('HMGET', ckey, 'state', 'queue', 'owner')
    if c[1] ~= 'waiting' or c[2] ~= queue then
      redis.call('ZREM', waiting, call_id)
      wake(queue)
      if strict then
        return false
      end
    else
      local taken = take()
      if #taken == 0 then
        break
      end
      n_offers = n_offers + 1
      local offer_id = offer_ids[n_offers]
      local owner = c[3] or ''
      local agents = table.concat(taken, ',')
      redis.call('ZREM', waiting, call_id)
      redis.call('HSET', ckey, 'state', 'offering', 'offer', offer_id, 'agents', agents,
                 'state_since', NOW_S)
      redis.call('HINCRBY', ckey, 'offers', 1)
      for _, id in ipairs(taken) do
        redis.call('HSET', agent_key(id), 'state', 'reserved', 'call', call_id, 'offer',
                   offer_id, 'owner', owner, 'last_offer_at', NOW_S, 'state_since', NOW_S)
        redis.call('ZREM', READY, id)
        on_reserved(id)
        emit('agent-state', {'agent', id, 'state', 'reserved', 'call', call_id, 'queue', queue,
                             'offer', offer_id})
      end
      emit('call-offered', {'call', call_id, 'queue', queue, 'offer', offer_id,
                            'agents', agents})
      out[#out + 1] = offer_id
      out[#out + 1] = call_id
      out[#out + 1] = owner
      out[#out + 1] = #taken
      for _, id in ipairs(taken) do
        out[#out + 1] = id
      end
      last_taken = taken[1]
      if want == 0 then
        break
      end
    end
  end
  if n_offers == 0 then
    return false
  end
  local pos = redis.call('ZSCORE', members, last_taken)
  if pos then
    redis.call('HSET', qhash, 'rr_last', pos)
  end
  return out
end

-- ---- enqueue and the matching pass (enqueue.lua, match.lua, arrive.lua) ------------------

-- A call enters ``queue`` (or re-enters it, keeping its seq): ``ckey`` its hash, ``calls``
-- the calls set, ``seqkey`` the seq counter, ``waiting`` the queue's waiting zset. ``extra``
-- the decoded JSON object of further fields; ``parked``: placed but not waiting (park.lua);
-- ``wake_it``: PUBLISH the queue on the wake channel (unless parked). Returns {seq, score,
-- fresh}, or an error reply while the call is offering or bridged.
local function enqueue_call(ckey, calls, seqkey, waiting, call_id, queue, prio, pmax, owner,
                            extra, parked, wake_it)
  local c = redis.call('HMGET', ckey, 'state', 'queue', 'seq', 'entered_at')
  local state = c[1]
  if state == 'offering' or state == 'bridged' then
    return redis.error_reply('call ' .. call_id .. ' is ' .. state)
  end
  local seq = c[3]
  local fresh = 0
  if not seq or seq == '' then
    seq = tostring(redis.call('INCR', seqkey))
    fresh = 1
  end
  local score = string.format('%.0f', (pmax - prio) * 1099511627776 + tonumber(seq))
  if state == 'waiting' and c[2] and c[2] ~= queue then
    redis.call('ZREM', waiting_key(c[2]), call_id)
  end
  if state == 'ended' then
    redis.call('HDEL', ckey, 'outcome', 'ended_at', 'agent', 'answered_at')
    redis.call('PERSIST', ckey)
  end
  for k, v in pairs(extra) do
    if type(v) == 'string' then
      redis.call('HSET', ckey, k, v)
    end
  end
  redis.call('HSET', ckey, 'id', call_id, 'queue', queue, 'priority', string.format('%d', prio),
             'seq', seq, 'score', score, 'state', 'waiting', 'owner', owner, 'offer', '',
             'agents', '', 'state_since', NOW_S)
  if not c[4] then
    redis.call('HSET', ckey, 'entered_at', NOW_S)
  end
  if parked then
    redis.call('HSET', ckey, 'parked', '1')
  else
    redis.call('HDEL', ckey, 'parked')
    redis.call('ZADD', waiting, score, call_id)
  end
  redis.call('SADD', calls, call_id)
  -- figures: offered = entered this queue: a first arrival or from another queue (a call
  -- handed back by a draining controller and queued again in the same queue stays one offer)
  local entered = c[4] or NOW_S
  if c[2] and c[2] ~= queue then
    redis.call('ZREM', inqueue_key(c[2]), call_id)
    queue_live(c[2])
  end
  redis.call('ZADD', inqueue_key(queue), entered, call_id)
  if fresh == 1 or c[2] ~= queue then
    stats_put('queue', queue, NOW, {'offered', 1})
  end
  queue_live(queue)
  local reentry = ''
  if fresh == 0 then
    reentry = '1'
  end
  emit('call-entered', {'call', call_id, 'queue', queue, 'priority', string.format('%d', prio),
                        'number', extra['number'] or '', 'reentry', reentry})
  if wake_it and not parked then
    wake(queue)
  end
  return {seq, score, fresh}
end

-- One matching pass of ``queue``: the calls heading it now, each given the next free
-- agent(s) its strategy prefers, read from the free index (match.lua documents the orders).
-- ``offer_ids``: one per call to serve at most; ``want``: agents per call (0: ring-all, one
-- call); ``fractions``: the random strategy's picks; ``excluded``: set of agent ids not to
-- offer now; ``busy_sets``: keys of sets of such agents. Keys: the queue's waiting zset,
-- members zset, hash and free index. Returns false or the offers as offer_calls returns them.
local function match_pass(queue, strategy, offer_ids, want, fractions, excluded, waiting,
                          members, qhash, free, busy_sets)
  if #offer_ids == 0 then
    return false
  end
  local q = redis.call('HMGET', qhash, 'paused', 'index_strategy', 'rr_last')
  if q[1] == '1' then
    return false
  end

  -- agents whose wrap-up or delay is over join the index now, not at the next timer
  free_due_agents()

  -- the index was scored for another strategy (or never built): build it again
  if q[2] ~= strategy then
    redis.call('DEL', free)
    redis.call('HSET', qhash, 'index_strategy', strategy)
    local all = redis.call('ZRANGE', members, 0, -1)
    for _, id in ipairs(all) do
      sync_free_in(id, queue, redis.call('HMGET', agent_key(id), unpack(AGENT_INDEX_FIELDS)))
    end
  end

  local calls = redis.call('ZRANGE', waiting, 0, #offer_ids - 1)
  if #calls == 0 then
    return false
  end

  -- next_agent(): the next candidate in the strategy's order (nil when there is none); each
  -- is returned once; candidates are checked for freedom by the caller.
  local next_agent
  local CHUNK = 32
  if strategy == 'most-idle' then
    local group, gi, last = {}, 1, '-inf'
    next_agent = function()
      while gi > #group do
        local nxt = redis.call('ZRANGEBYSCORE', free, last, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
        if not nxt[1] then
          return nil
        end
        local s = nxt[2]
        local ids = redis.call('ZRANGEBYSCORE', free, s, s)
        group = {}
        for _, id in ipairs(ids) do
          group[#group + 1] = {id, tonumber(redis.call('ZSCORE', members, id)) or 0}
        end
        table.sort(group, function(x, y)
          if x[2] ~= y[2] then
            return x[2] < y[2]
          end
          return x[1] < y[1]
        end)
        gi = 1
        last = '(' .. s
      end
      gi = gi + 1
      return group[gi - 1][1]
    end
  elseif strategy == 'random' then
    local fi, seen_r = 1, {}
    local fallback = nil
    next_agent = function()
      while fi <= #fractions do
        local f = tonumber(fractions[fi]) or 0
        fi = fi + 1
        local card = redis.call('ZCARD', free)
        if card == 0 then
          return nil
        end
        local pick = redis.call('ZRANGE', free, math.floor(f * card), math.floor(f * card))
        if pick[1] and not seen_r[pick[1]] then
          seen_r[pick[1]] = true
          return pick[1]
        end
      end
      -- out of fractions (picks collided): the rest in index order
      if not fallback then
        fallback = redis.call('ZRANGE', free, 0, -1)
      end
      while #fallback > 0 do
        local id = table.remove(fallback, 1)
        if not seen_r[id] then
          seen_r[id] = true
          return id
        end
      end
      return nil
    end
  else
    -- by score, then id: first-available, ring-all (position), fewest-calls, least-talk-time
    -- (their count or time, then position); round-robin starts after rr_last and wraps
    local ranges = {{'-inf', '+inf'}}
    if strategy == 'round-robin' and q[3] and q[3] ~= '' then
      ranges = {{'(' .. q[3], '+inf'}, {'-inf', q[3]}}
    end
    local ri, off, buf, bi = 1, 0, {}, 1
    next_agent = function()
      while bi > #buf do
        if ri > #ranges then
          return nil
        end
        buf = redis.call('ZRANGEBYSCORE', free, ranges[ri][1], ranges[ri][2],
                         'LIMIT', off, CHUNK)
        bi = 1
        off = off + CHUNK
        if #buf < CHUNK then
          ri = ri + 1
          off = 0
          if #buf == 0 then
            buf = {}
          end
        end
      end
      bi = bi + 1
      return buf[bi - 1]
    end
  end

  -- index changes wait until every pick is made (the iterators page through the index)
  local taken_ever, stale, reserved = {}, {}, {}
  local function take()
    local taken = {}
    while true do
      local id = next_agent()
      if not id then
        break
      end
      local skip = excluded[id] or taken_ever[id]
      for _, set in ipairs(busy_sets) do
        if not skip and redis.call('SISMEMBER', set, id) == 1 then
          skip = true
        end
      end
      if not skip then
        if agent_free(id, members) then
          taken_ever[id] = true
          taken[#taken + 1] = id
          if want > 0 and #taken >= want then
            break
          end
        else
          stale[#stale + 1] = id
        end
      end
    end
    return taken
  end

  local out = offer_calls(queue, calls, offer_ids, want, take, waiting, members, qhash,
                          function(id) reserved[#reserved + 1] = id end, false)
  for _, id in ipairs(stale) do
    redis.call('ZREM', free, id)
  end
  for _, id in ipairs(reserved) do
    sync_free(id)
  end
  return out
end
