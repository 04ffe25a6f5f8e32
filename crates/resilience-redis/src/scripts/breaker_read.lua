-- Shared circuit breaker: read the state (after breaker_common.lua).
return answer(0)
