-- match.lua: one matching pass of a queue in one round trip: the calls heading it now, each
-- given the next free agent(s) its strategy prefers, read from the free index.
--
-- KEYS[1]  events stream
-- KEYS[2]  queue:<q>:waiting   zset of waiting calls
-- KEYS[3]  queue:<q>:members   zset agent id -> position
-- KEYS[4]  queue:<q>           hash; rr_last (round-robin pointer, set to the position of the
--                              last agent taken), paused ("1": no offers), index_strategy
-- KEYS[5]  queue:<q>:free      zset: the free index (see _lib.lua, free_score)
-- KEYS[6…] optional: sets of agents not to offer now (presence: ext_busy, unregistered, dnd)
-- ARGV[1]  key prefix (agent and call keys are built from it)
-- ARGV[2]  now
-- ARGV[3]  queue name
-- ARGV[4]  strategy (fsacd/core/strategies.py names); the index is rebuilt when it was
--          scored for another one
-- ARGV[5]  offer ids (new, unique), comma-separated: one per call to serve at most
-- ARGV[6]  want: agents per call (0 = every free agent: ring-all, one call)
-- ARGV[7]  random strategy only: fractions in [0, 1), comma-separated, one per pick
-- ARGV[8…] agents not to offer now (busy elsewhere: presence)
-- Returns false when nothing was offered, else the offers as reserve.lua returns them:
-- {offer_id, call_id, owner, n, agent_id × n, offer_id, …}.
-- The orders are those of fsacd/core/strategies.py: first-available, ring-all by position;
-- round-robin by position after rr_last, then from the start; fewest-calls, least-talk-time
-- by their count or time, then position, then id (folded into the index's score); most-idle
-- by idle time, equal times by position, then id; random uniformly (the caller's fractions).
-- An index entry that is no longer free (it should not happen) is dropped.
-- Index entries change only after every pick is made (the iterators page through it).
-- Agents whose ready_at has come are freed first (free_due_agents, _lib.lua). The pass
-- itself is match_pass in _lib.lua (arrive.lua runs it too).

local excluded = {}
for i = 8, #ARGV do
  excluded[ARGV[i]] = true
end
local busy_sets = {}
for i = 6, #KEYS do
  busy_sets[#busy_sets + 1] = KEYS[i]
end
return match_pass(ARGV[3], ARGV[4], split(ARGV[5]), tonumber(ARGV[6]), split(ARGV[7]),
                  excluded, KEYS[2], KEYS[3], KEYS[4], KEYS[5], busy_sets)
