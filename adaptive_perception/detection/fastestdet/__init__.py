"""FastestDet: a COCO-pretrained tiny detector as a second model family of the detector."""
