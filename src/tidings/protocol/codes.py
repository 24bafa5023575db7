"""Codes used on the device protocol: error frame codes and WebSocket close codes.

Command results reuse Mi Push's codes (0 success, 650xx field errors, 10029 invalid device,
2200x app identity errors) so an app ported from Mi Push reads familiar numbers.
"""

OK = 0

# error frame codes (messageType "error")
BAD_FRAME = 4000  # not JSON, wrong field types, missing fields
UNKNOWN_TYPE = 4001  # messageType not known
HELLO_FIRST = 4002  # a frame other than hello arrived before hello
NOT_REGISTERED = 4003  # reg_id not registered on this connection
UNKNOWN_COMMAND = 4004
TOO_MANY_APPS = 4005

# app_register failure codes (Mi Push codes)
BAD_APP_ID = 22006
BAD_APP_KEY = 22007
BAD_PACKAGE = 22022
APP_BLOCKED = 22030  # Tidings: the app's developer account is suspended or terminated
SDK_UNSUPPORTED = 22031  # Tidings: the device's SDK is below the minimum supported version
REGION_NOT_SERVED = 22040  # Tidings: the app's region is served by other nodes, not this one

# WebSocket close codes
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_IDLE = 4009  # no hello in time
# A device that reads too slowly, or stops answering pings, is cut off without a close frame:
# its socket is aborted (a close frame could not get through anyway).
