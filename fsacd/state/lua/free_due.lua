-- free_due.lua: agents whose ready_at has come: wrap-up -> idle; their queues are woken
-- (also after a busy/reject/no-answer delay, when the state is already idle).
--
-- KEYS[1]  events stream
-- KEYS[2]  ready zset (agent id -> ready_at; used as READY, the same key built from ARGV[1])
-- ARGV[1]  key prefix (agent keys are built from it)
-- ARGV[2]  now
-- Returns the queue names woken (PUBLISHed on the wake channel).

free_due_agents()
return woken_list
