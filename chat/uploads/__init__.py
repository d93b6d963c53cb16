"""
Files and images (docs/uploads.md): the browser uploads straight to S3 with
a presigned POST; the chat server signs, checks and names.

- ``tokens``: the welcome's ``uploadToken``, bound to a connection, room and sender.
- ``storage``: the uploads bucket (sign a POST, look an object up, URLs, delete).
- ``attachments``: a message's attachments, checked before it is sent, and their URLs.
- ``views``: ``POST /api/uploads/``.
"""
