"""File-backed datasets and media: Biwi, Pandora, TUM RGB-D folders, photos and videos.
"""
