"""No HTTP pages: the baseline only speaks WebSocket."""

urlpatterns = []
