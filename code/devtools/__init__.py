"""Development tools: SpyCloud emulator, token kit, demo, benchmarks.

Never shipped in the relay's image.
"""
