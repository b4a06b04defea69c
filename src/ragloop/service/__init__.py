"""The HTTP service: the FastAPI app split by protocol (native, DocsGPT, OpenAI), auth, metrics."""
