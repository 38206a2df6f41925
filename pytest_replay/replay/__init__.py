"""The developer side: replay a recorded request against today's code, sealed and compared."""
