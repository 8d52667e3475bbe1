//! barnabee-agents: routes every utterance (instant answers, Home Assistant actions, memory,
//! the LLM inside a cost budget). A daemon on top of barnabee-service; talks to its peers
//! (Home Assistant, barnabee-memory, OpenAI-compatible LLM servers) over HTTP/WebSocket only.

pub mod route;
