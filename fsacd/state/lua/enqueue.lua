-- enqueue.lua: a call enters a queue, or re-enters one (it keeps its seq, hence its place
-- among calls of the same priority).
--
-- KEYS[1]  events stream
-- KEYS[2]  call:<call_id>
-- KEYS[3]  calls set
-- KEYS[4]  seq counter
-- KEYS[5]  queue:<q>:waiting of the target queue
-- ARGV[1]  key prefix (the waiting zset of a queue the call leaves is built from it)
-- ARGV[2]  now
-- ARGV[3]  call id
-- ARGV[4]  queue name
-- ARGV[5]  priority (already clamped to 0..PRIORITY_MAX)
-- ARGV[6]  PRIORITY_MAX
-- ARGV[7]  owner (controller id)
-- ARGV[8]  JSON object of further string fields for the call hash (number, name, ...)
-- ARGV[9]  '1': enter parked (a dialog comes first, see park.lua): the call has its place
--          but is not in `waiting` until unparked; else '' (optional)
-- The work is enqueue_call in _lib.lua (arrive.lua runs it too).
-- Returns {seq, score, new} (new = 1 for a first arrival); an error reply if the call is
-- offering or bridged.

local res = enqueue_call(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[3], ARGV[4], num(ARGV[5]),
                         num(ARGV[6]), ARGV[7], cjson.decode(ARGV[8]), ARGV[9] == '1', true)
return res
